/**
 * Signed artifacts and SBOMs with the real cosign and syft: a release signs and describes
 * its artifacts, verifies with the public key, and is refused (as `deploy --overlay prod`
 * refuses it) once an artifact is tampered with or the key is another.
 */
import { join } from "node:path";
import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { requireSignedRelease, signRelease, verifyRelease } from "./release.ts";
import { pathWhich, runChecked } from "./kube_tools.ts";

async function keyPair(dir: string, cosign: string) {
  await Deno.mkdir(dir, { recursive: true });
  const output = await new Deno.Command(cosign, {
    args: ["generate-key-pair"],
    cwd: dir,
    env: { COSIGN_PASSWORD: "release test password" },
    stdout: "null",
    stderr: "piped",
  }).output();
  assert(output.success, new TextDecoder().decode(output.stderr));
  return { key: join(dir, "cosign.key"), pub: join(dir, "cosign.pub") };
}

Deno.test({
  name: "release: signed with cosign, an SPDX SBOM by syft; a tampered artifact is refused",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const which = pathWhich();
    const [cosign, syft] = [await which("cosign"), await which("syft")];
    assert(cosign && syft, "cosign and syft are installed (infra/tools/install.sh)");
    const dir = await Deno.makeTempDir({ prefix: "guardyn-release-" });
    Deno.env.set("COSIGN_PASSWORD", "release test password");
    try {
      const ours = await keyPair(join(dir, "keys"), cosign);
      const theirs = await keyPair(join(dir, "other"), cosign);
      const release = join(dir, "release");
      await Deno.mkdir(join(release, "pkg"), { recursive: true });
      // An artifact like the offline image form: a tar of a tree with a lock file in it.
      await Deno.copyFile(
        new URL("../deno.lock", import.meta.url),
        join(release, "pkg", "deno.lock"),
      );
      await Deno.copyFile(
        new URL("../deno.json", import.meta.url),
        join(release, "pkg", "deno.json"),
      );
      await runChecked("tar", ["-cf", join(release, "guardyn-offline.tar"), "-C", release, "pkg"]);
      const record = await signRelease({ cosign, syft }, ours.key, release, [
        "guardyn-offline.tar",
      ]);
      assertEquals(record.artifacts.map((a) => a.file), ["guardyn-offline.tar"]);
      const sbom = JSON.parse(
        await Deno.readTextFile(join(release, "guardyn-offline.tar.spdx.json")),
      );
      assert(String(sbom.spdxVersion).startsWith("SPDX-"), "an SPDX document");
      assertEquals(await verifyRelease(cosign, ours.pub, release), []);
      await requireSignedRelease(release, ours.pub);

      // Another key's holder did not sign it.
      const foreign = await verifyRelease(cosign, theirs.pub, release);
      assert(foreign.some((p) => p.includes("does not verify")), foreign.join("; "));

      // One byte changed after signing: refused, as deploy --overlay prod refuses it.
      const bytes = await Deno.readFile(join(release, "guardyn-offline.tar"));
      bytes[bytes.length - 1] = bytes.at(-1)! ^ 1;
      await Deno.writeFile(join(release, "guardyn-offline.tar"), bytes);
      const tampered = await verifyRelease(cosign, ours.pub, release);
      assertEquals(tampered.length, 2, tampered.join("; "));
      await assertRejects(() => requireSignedRelease(release, ours.pub), /unverified release/);
      await assertRejects(
        () => requireSignedRelease(join(dir, "none"), ours.pub),
        /deno task release/,
      );
    } finally {
      Deno.env.delete("COSIGN_PASSWORD");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
