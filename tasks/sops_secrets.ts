/**
 * Production Secrets in git, encrypted with SOPS to age recipients (`.sops.yaml`):
 * `infra/secrets/<overlay>.enc.yaml` holds a List of the Secrets kube-bootstrap generates, with
 * every `data`/`stringData` value encrypted (names and keys stay readable for review).
 * Plaintext only ever passes through pipes: sops reads it on stdin when encrypting and writes
 * it to stdout when decrypting; nothing plaintext is written to disk.
 */

import { parse, stringify } from "yaml";
import { run } from "./kube_tools.ts";
import type { SecretManifest } from "./kube_bootstrap.ts";

/** Where an overlay's encrypted Secrets live, relative to the repository root. */
export function encryptedSecretsPath(overlay: string): string {
  return `infra/secrets/${overlay}.enc.yaml`;
}

/**
 * Encrypts the Secrets to `target` (an absolute path whose name matches a `.sops.yaml` rule).
 * `config` is the `.sops.yaml` to use (default: found by sops from the target's directory up).
 */
export async function encryptSecrets(
  sops: string,
  secrets: readonly SecretManifest[],
  target: string,
  options: { config?: string; cwd?: string } = {},
): Promise<void> {
  const plaintext = stringify({ apiVersion: "v1", kind: "List", items: secrets });
  const result = await run(sops, [
    ...(options.config ? ["--config", options.config] : []),
    "--encrypt",
    "--input-type",
    "yaml",
    "--output-type",
    "yaml",
    "--filename-override",
    target,
    "/dev/stdin",
  ], { stdin: plaintext, cwd: options.cwd });
  if (result.code !== 0) {
    throw new Error(`sops could not encrypt ${target}: ${tail(result.stderr)}`);
  }
  await Deno.writeTextFile(target, result.stdout, { mode: 0o644 });
}

/** Decrypts an encrypted Secrets file in memory with the age key in SOPS_AGE_KEY_FILE. */
export async function decryptSecrets(
  sops: string,
  file: string,
  ageKeyFile: string | undefined,
): Promise<SecretManifest[]> {
  if (!ageKeyFile) {
    throw new Error(
      `${file} is encrypted: set SOPS_AGE_KEY_FILE to an age identity of one of its recipients`,
    );
  }
  const result = await run(sops, ["--decrypt", "--output-type", "yaml", file], {
    env: { SOPS_AGE_KEY_FILE: ageKeyFile },
  });
  // sops's messages name the file and the key groups, never a value.
  if (result.code !== 0) throw new Error(`sops could not decrypt ${file}: ${tail(result.stderr)}`);
  const list = parse(result.stdout) as { kind?: string; items?: SecretManifest[] };
  if (list?.kind !== "List" || !Array.isArray(list.items)) {
    throw new Error(`${file} is not a List of Secrets`);
  }
  for (const item of list.items) {
    if (item?.kind !== "Secret") throw new Error(`${file} holds a ${item?.kind}, not a Secret`);
  }
  return list.items;
}

function tail(text: string): string {
  return text.trim().split("\n").slice(-5).join(" ").slice(0, 1000);
}

/** What kubectl apply reads on stdin: the Secrets, placed in the deployment's namespace. */
export function secretsApplyPayload(secrets: readonly SecretManifest[], namespace: string): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "List",
    items: secrets.map((s) => ({ ...s, metadata: { ...s.metadata, namespace } })),
  });
}

/** The committed `.sops.yaml` names a placeholder until operators add their age keys. */
export function hasPlaceholderRecipients(sopsConfig: string): boolean {
  return sopsConfig.includes("replacewithyouroperatorskeys");
}
