/**
 * `deno task kube-bootstrap [--overlay local|prod] [--context NAME] [--dry-run]`: creates the
 * namespace and every Secret the manifests reference (SECRET_KEYS), with values generated here:
 * the access-token key set (generateTokenKeyFile), CQL credentials, the ScyllaDB superuser
 * password and the NATS token. Values go to `kubectl create -f -` on stdin: never on a command
 * line, never in a file, never printed. Secrets that already exist are kept (no silent rotation).
 * With `--sops-file` it writes them instead to infra/secrets/<overlay>.enc.yaml, encrypted with
 * SOPS to the age recipients of `.sops.yaml` (plaintext only on sops's stdin), keeping the
 * Secrets the file already holds (decrypted with SOPS_AGE_KEY_FILE); `deploy` applies that file.
 */

import { generateTokenKeyFile } from "../services/platform/tokens.ts";
import { toBase64Url } from "../services/platform/base64url.ts";
import { p256 } from "@noble/curves/nist.js";
import { repoRootFromHere } from "./kube_catalog.ts";
import {
  chooseContext,
  fail,
  loadLocalCluster,
  loadNamespace,
  NAMESPACE_FILE,
  parseFlags,
} from "./kube_cli.ts";
import { SECRET_KEYS, SECRET_NAMES, TOKEN_KEYS_FILE_NAME } from "./kube_manifests.ts";
import { parseOverlay } from "./kube_render.ts";
import { MissingToolsError, pathWhich, requireTools, runChecked } from "./kube_tools.ts";
import {
  decryptSecrets,
  encryptedSecretsPath,
  encryptSecrets,
  hasPlaceholderRecipients,
} from "./sops_secrets.ts";

export const CQL_APP_USER = "guardyn";
const SECRET_LENGTH = 43; // about 256 bits from a 62-letter alphabet
const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ALPHANUMERIC = LETTERS + "0123456789";

/**
 * A random alphanumeric secret that starts with a letter: safe unquoted in CQL, in the NATS
 * config (never read as a number) and in shell. Rejection sampling keeps it uniform.
 */
export function randomSecret(length = SECRET_LENGTH): string {
  if (!Number.isInteger(length) || length < 16 || length > 128) {
    throw new Error("secret length must be 16..128");
  }
  const out: string[] = [];
  while (out.length < length) {
    const alphabet = out.length === 0 ? LETTERS : ALPHANUMERIC;
    const limit = 256 - (256 % alphabet.length);
    for (const byte of crypto.getRandomValues(new Uint8Array(length * 2))) {
      if (byte < limit && out.length < length) {
        out.push(alphabet[byte % alphabet.length]!);
        if (out.length === 1) break; // the next characters use the full alphabet
      }
    }
  }
  return out.join("");
}

export interface SecretManifest {
  apiVersion: "v1";
  kind: "Secret";
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  type: "Opaque";
  stringData: Record<string, string>;
}

function secret(name: string, namespace: string, data: Record<string, string>): SecretManifest {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name,
      namespace,
      labels: {
        "app.kubernetes.io/part-of": "guardyn",
        "app.kubernetes.io/managed-by": "guardyn-kube-bootstrap",
      },
    },
    type: "Opaque",
    stringData: data,
  };
}

/** Fresh values for every Secret the manifests reference. */
export async function generateSecrets(namespace: string): Promise<SecretManifest[]> {
  const tokenKeys = JSON.stringify(await generateTokenKeyFile());
  return [
    secret(SECRET_NAMES.tokenKeys, namespace, { [TOKEN_KEYS_FILE_NAME]: tokenKeys }),
    secret(SECRET_NAMES.cql, namespace, {
      CQL_USERNAME: CQL_APP_USER,
      CQL_PASSWORD: randomSecret(),
    }),
    secret(SECRET_NAMES.nats, namespace, { NATS_TOKEN: randomSecret() }),
    secret(SECRET_NAMES.scyllaSuperuser, namespace, { password: randomSecret() }),
    // For the in-cluster versitygw; with an external S3, create guardyn-s3 with its keys first
    // (an existing Secret is kept).
    secret(SECRET_NAMES.s3, namespace, {
      S3_ACCESS_KEY_ID: randomSecret(),
      S3_SECRET_ACCESS_KEY: randomSecret(),
    }),
    secret(SECRET_NAMES.turn, namespace, { TURN_SHARED_SECRET: randomSecret() }),
    // A P-256 private scalar (base64url): browsers subscribe with its public key, so it is
    // kept across deploys like every other Secret (an existing one is never replaced).
    secret(SECRET_NAMES.push, namespace, {
      VAPID_PRIVATE_KEY: toBase64Url(p256.utils.randomSecretKey()),
    }),
  ];
}

/** Which Secrets to create: every one the manifests need that the cluster does not have. */
export function secretsToCreate(existing: ReadonlySet<string>): string[] {
  return Object.keys(SECRET_KEYS).filter((name) => !existing.has(name));
}

/** `kubectl get secrets -o name` output -> names. */
export function parseSecretNames(output: string): Set<string> {
  return new Set(
    output.split("\n").map((line) => line.trim().replace(/^secret\//, "")).filter((l) => l),
  );
}

/**
 * The Secrets an encrypted file should hold: those it has (kept, never rotated) plus freshly
 * generated ones for the names it lacks. Returns them with the names that were added.
 */
export async function mergeSecrets(
  existing: readonly SecretManifest[],
  namespace: string,
): Promise<{ secrets: SecretManifest[]; added: string[] }> {
  const have = new Set(existing.map((s) => s.metadata.name));
  const added = secretsToCreate(have);
  const fresh = (await generateSecrets(namespace)).filter((s) => added.includes(s.metadata.name));
  return { secrets: [...existing, ...fresh], added };
}

/** `--sops-file`: write the overlay's Secrets encrypted to git instead of into a cluster. */
async function writeEncrypted(root: string, overlay: string, namespace: string, dryRun: boolean) {
  const sops = await pathWhich()("sops");
  if (!sops) throw new MissingToolsError(["sops"], "kube-bootstrap --sops-file");
  const config = await Deno.readTextFile(`${root}/.sops.yaml`);
  if (hasPlaceholderRecipients(config)) {
    throw new Error(
      ".sops.yaml still names the placeholder recipient: put your operators' age public keys " +
        "there (age-keygen -y <identity>) first",
    );
  }
  const target = `${root}/${encryptedSecretsPath(overlay)}`;
  const exists = await Deno.stat(target).then(() => true, () => false);
  const existing = exists
    ? await decryptSecrets(sops, target, Deno.env.get("SOPS_AGE_KEY_FILE"))
    : [];
  const { secrets, added } = await mergeSecrets(existing, namespace);
  for (const name of Object.keys(SECRET_KEYS)) {
    console.log(`  ${name}: ${added.includes(name) ? "generate" : "keep (in the file)"}`);
  }
  if (dryRun || added.length === 0) return;
  await encryptSecrets(sops, secrets, target, { cwd: root });
  console.log(
    `kube-bootstrap: wrote ${encryptedSecretsPath(overlay)} (${added.length} new Secret(s), ` +
      "values encrypted to the .sops.yaml recipients; commit it)",
  );
}

async function main() {
  const flags = parseFlags(Deno.args, {
    options: ["overlay", "context"],
    switches: ["dry-run", "sops-file"],
  });
  const root = repoRootFromHere();
  const overlay = parseOverlay(flags.options.overlay ?? "local");
  if (flags.switches.has("sops-file")) {
    return await writeEncrypted(
      root,
      overlay,
      await loadNamespace(root),
      flags.switches.has("dry-run"),
    );
  }
  const context = chooseContext(
    overlay,
    flags.options.context,
    Deno.env.toObject(),
    await loadLocalCluster(root),
  );
  const namespace = await loadNamespace(root);
  const { kubectl } = await requireTools(["kubectl"], pathWhich(), "kube-bootstrap") as {
    kubectl: string;
  };
  const kc = ["--context", context];
  console.log(`kube-bootstrap: context ${context}, namespace ${namespace}`);
  if (!flags.switches.has("dry-run")) {
    await runChecked(kubectl, [...kc, "apply", "-f", `${root}/${NAMESPACE_FILE}`]);
  }
  const listed = await runChecked(kubectl, [
    ...kc,
    "get",
    "secrets",
    "-n",
    namespace,
    "-o",
    "name",
  ]).catch((error) => {
    if (flags.switches.has("dry-run")) return ""; // the namespace may not exist yet
    throw error;
  });
  const missing = secretsToCreate(parseSecretNames(listed));
  for (const name of Object.keys(SECRET_KEYS)) {
    const state = missing.includes(name) ? "create" : "keep (exists)";
    console.log(`  ${name} [${SECRET_KEYS[name]!.join(", ")}]: ${state}`);
  }
  if (missing.length === 0 || flags.switches.has("dry-run")) return;
  const manifests = (await generateSecrets(namespace)).filter((s) =>
    missing.includes(s.metadata.name)
  );
  const list = { apiVersion: "v1", kind: "List", items: manifests };
  await runChecked(kubectl, [...kc, "create", "-f", "-"], { stdin: JSON.stringify(list) });
  console.log(`kube-bootstrap: created ${missing.length} Secret(s); values were not printed`);
}

if (import.meta.main) await main().catch((error) => fail("kube-bootstrap", error));
