/**
 * Secrets through SOPS and age, with the real tools: kube-bootstrap's Secrets encrypted by the
 * repository's own `.sops.yaml` rule to a fresh age recipient hold no plaintext and pass the
 * secret scan; only a holder of the identity decrypts them; merging keeps existing values.
 */
import { join } from "node:path";
import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { generateSecrets } from "./kube_bootstrap.ts";
import { mergeSecrets } from "./kube_bootstrap.ts";
import {
  decryptSecrets,
  encryptSecrets,
  hasPlaceholderRecipients,
  secretsApplyPayload,
} from "./sops_secrets.ts";
import { scanText } from "./secret_scan.ts";
import { pathWhich, runChecked } from "./kube_tools.ts";
import { ROOT } from "./kube_test_kit.ts";

async function identity(dir: string, name: string) {
  const file = join(dir, `${name}.agekey`);
  await runChecked("age-keygen", ["-o", file]);
  return { file, recipient: (await runChecked("age-keygen", ["-y", file])).trim() };
}

Deno.test("sops: Secrets encrypted to age in git; only the identity's holder reads them", async () => {
  const sops = await pathWhich()("sops");
  assert(sops, "sops is installed (infra/tools/install.sh)");
  const dir = await Deno.makeTempDir({ prefix: "guardyn-sops-" });
  try {
    const operator = await identity(dir, "operator");
    const stranger = await identity(dir, "stranger");
    const shipped = await Deno.readTextFile(join(ROOT, ".sops.yaml"));
    assert(hasPlaceholderRecipients(shipped), "the shipped rule waits for the operators' keys");
    // The shipped rule, with this test's recipient.
    await Deno.writeTextFile(
      join(dir, ".sops.yaml"),
      shipped.replace(/age1guardyn\w+/, operator.recipient),
    );
    await Deno.mkdir(join(dir, "infra", "secrets"), { recursive: true });
    const target = join(dir, "infra", "secrets", "prod.enc.yaml");
    const secrets = await generateSecrets("guardyn");
    await encryptSecrets(sops, secrets, target, { cwd: dir });

    const text = await Deno.readTextFile(target);
    for (const secret of secrets) {
      assert(text.includes(secret.metadata.name), "names stay readable for review");
      for (const [key, value] of Object.entries(secret.stringData)) {
        assert(text.includes(key));
        for (const line of value.split("\n").filter((l) => l.length > 12)) {
          assert(!text.includes(line), `no plaintext of ${secret.metadata.name}.${key}`);
        }
      }
    }
    assertEquals(scanText("infra/secrets/prod.enc.yaml", text), []);
    assert(text.includes(operator.recipient) && text.includes("sops:"));

    assertEquals(await decryptSecrets(sops, target, operator.file), secrets);
    await assertRejects(() => decryptSecrets(sops, target, undefined), /SOPS_AGE_KEY_FILE/);
    await assertRejects(() => decryptSecrets(sops, target, stranger.file), /could not decrypt/);

    // Bootstrap again: what the file holds is kept, the missing ones are generated.
    const kept = secrets.slice(0, 2);
    const merged = await mergeSecrets(kept, "guardyn");
    assertEquals(merged.secrets.slice(0, 2), kept);
    assertEquals(merged.added, secrets.slice(2).map((s) => s.metadata.name));
    assertEquals(merged.secrets.length, secrets.length);

    // What deploy pipes to kubectl: the decrypted Secrets in the deployment's namespace.
    const payload = JSON.parse(secretsApplyPayload(secrets, "guardyn-prod"));
    assertEquals(payload.kind, "List");
    assert(
      payload.items.every((s: { metadata: { namespace: string } }) =>
        s.metadata.namespace === "guardyn-prod"
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sops: age identities are ignored by git", async () => {
  const ignored = await runChecked("git", [
    "check-ignore",
    "--no-index",
    "infra/secrets/operator.agekey",
    "age-key.txt",
    "keys.txt",
  ], { cwd: ROOT });
  assertEquals(ignored.trim().split("\n").length, 3);
});
