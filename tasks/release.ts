/**
 * `deno task release [--key cosign.key]`: signs what `deno task build` produced and writes an
 * SBOM for it, into dist/release/:
 *   - the artifacts: each compiled binary dist/<name>, or the offline image form packed as
 *     guardyn-offline.tar (tasks/offline_image.ts);
 *   - <artifact>.sig: `cosign sign-blob` with a key pair (COSIGN_PASSWORD unlocks the key;
 *     keyless signing needs the public Sigstore services, which are not reachable everywhere,
 *     so nothing is uploaded to a transparency log);
 *   - <artifact>.spdx.json: an SPDX SBOM by `syft`;
 *   - release.json: the artifacts with their SHA-256, what `deploy --overlay prod` checks.
 * `deploy --overlay prod` verifies every signature against the public key
 * (COSIGN_PUBLIC_KEY, default infra/release/cosign.pub) and refuses to deploy otherwise.
 */

import { join } from "node:path";
import { pathWhich, run, runChecked } from "./kube_tools.ts";

export interface ReleaseRecord {
  artifacts: { file: string; sha256: string }[];
}

export async function sha256File(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Signs one artifact with a cosign key pair; the signature goes beside it (`.sig`). */
export async function signBlob(cosign: string, key: string, artifact: string): Promise<void> {
  await runChecked(cosign, [
    "sign-blob",
    "--yes",
    "--key",
    key,
    "--tlog-upload=false",
    "--output-signature",
    `${artifact}.sig`,
    artifact,
  ]);
}

/** True when the artifact's `.sig` verifies against the public key. */
export async function verifyBlob(cosign: string, publicKey: string, artifact: string) {
  const result = await run(cosign, [
    "verify-blob",
    "--key",
    publicKey,
    "--insecure-ignore-tlog=true",
    "--signature",
    `${artifact}.sig`,
    artifact,
  ]);
  return result.code === 0;
}

/** Writes an SPDX JSON SBOM of a file or directory beside `out`. */
export async function writeSbom(syft: string, source: string, out: string): Promise<void> {
  await runChecked(syft, ["scan", source, "-o", `spdx-json=${out}`, "-q"]);
}

/**
 * Verifies a release directory: every artifact of release.json has its SHA-256 and a signature
 * that verifies. Returns the problems (empty when all is well).
 */
export async function verifyRelease(
  cosign: string,
  publicKey: string,
  dir: string,
): Promise<string[]> {
  const record = JSON.parse(await Deno.readTextFile(join(dir, "release.json"))) as ReleaseRecord;
  const problems: string[] = [];
  if (record.artifacts.length === 0) problems.push("release.json lists no artifact");
  for (const { file, sha256 } of record.artifacts) {
    const path = join(dir, file);
    if (await sha256File(path) !== sha256) {
      problems.push(`${file}: SHA-256 differs from release.json`);
    }
    if (!(await verifyBlob(cosign, publicKey, path))) {
      problems.push(`${file}: its signature does not verify against ${publicKey}`);
    }
  }
  return problems;
}

/**
 * What `deploy --overlay prod` requires: a release in `dir` whose every artifact verifies
 * against `publicKey`. Throws with each problem otherwise.
 */
export async function requireSignedRelease(dir: string, publicKey: string): Promise<void> {
  if (!(await Deno.stat(join(dir, "release.json")).then(() => true, () => false))) {
    throw new Error("the prod overlay deploys a signed release only: run deno task release");
  }
  const cosign = await pathWhich()("cosign");
  if (!cosign) {
    throw new Error("cosign is needed to verify the release: bash infra/tools/install.sh");
  }
  const problems = await verifyRelease(cosign, publicKey, dir);
  if (problems.length > 0) {
    throw new Error(`refusing to deploy an unverified release:\n  - ${problems.join("\n  - ")}`);
  }
}

/** Signs and describes the artifacts in `dir` (already copied there). */
export async function signRelease(
  tools: { cosign: string; syft: string },
  key: string,
  dir: string,
  files: readonly string[],
): Promise<ReleaseRecord> {
  const artifacts = [];
  for (const file of files) {
    const path = join(dir, file);
    await signBlob(tools.cosign, key, path);
    await writeSbom(tools.syft, `file:${path}`, `${path}.spdx.json`);
    artifacts.push({ file, sha256: await sha256File(path) });
  }
  const record = { artifacts };
  await Deno.writeTextFile(join(dir, "release.json"), JSON.stringify(record, null, 2) + "\n");
  return record;
}

async function main() {
  const root = new URL("..", import.meta.url).pathname;
  const keyArg = Deno.args.indexOf("--key");
  const key = keyArg >= 0 ? Deno.args[keyArg + 1]! : Deno.env.get("COSIGN_KEY") ?? "cosign.key";
  const which = pathWhich();
  const [cosign, syft] = [await which("cosign"), await which("syft")];
  if (!cosign || !syft) throw new Error("cosign and syft are needed: bash infra/tools/install.sh");
  const dist = join(root, "dist");
  const dir = join(dist, "release");
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  const files: string[] = [];
  if (await Deno.stat(join(dist, "offline")).then(() => true, () => false)) {
    await runChecked("tar", ["-cf", join(dir, "guardyn-offline.tar"), "-C", dist, "offline"]);
    files.push("guardyn-offline.tar");
  }
  for await (const entry of Deno.readDir(dist)) {
    if (entry.isFile && !entry.name.includes(".")) {
      await Deno.copyFile(join(dist, entry.name), join(dir, entry.name));
      files.push(entry.name);
    }
  }
  if (files.length === 0) throw new Error("nothing to release: run deno task build first");
  const record = await signRelease({ cosign, syft }, key, dir, files);
  for (const a of record.artifacts) {
    console.log(`release: ${a.file} signed, SBOM written (${a.sha256.slice(0, 16)})`);
  }
}

if (import.meta.main) {
  await main().catch((error) => {
    console.error(`release: ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  });
}
