/**
 * Fails when a file under infra/ holds an unencrypted secret value: a Kubernetes Secret with
 * `data`/`stringData` values outside a SOPS-encrypted file, or key material (an age identity,
 * a PEM private key) anywhere. Run by tasks/secret_scan_test.ts on the repository, so CI fails.
 */

import { join, relative } from "node:path";
import { parseAllDocuments } from "yaml";

export interface Finding {
  file: string;
  why: string;
}

const KEY_MATERIAL: [RegExp, string][] = [
  [/AGE-SECRET-KEY-1[0-9A-Z]{20,}/, "an age identity (private key)"],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "a PEM private key"],
];
const ENCRYPTED = /^ENC\[[A-Z0-9_]+,data:/;

/** Findings of one file's text (pure). */
export function scanText(file: string, text: string): Finding[] {
  const findings: Finding[] = [];
  for (const [pattern, what] of KEY_MATERIAL) {
    if (pattern.test(text)) findings.push({ file, why: `holds ${what}` });
  }
  if (!/\.(ya?ml|json)$/.test(file)) return findings;
  let docs: unknown[];
  try {
    docs = parseAllDocuments(text).map((d) => d.toJS());
  } catch {
    return findings;
  }
  for (const doc of docs) {
    const sops = isObject(doc) && "sops" in doc;
    for (const secret of secretsIn(doc)) {
      for (const field of ["data", "stringData"] as const) {
        const values = secret[field];
        if (!isObject(values)) continue;
        for (const [key, value] of Object.entries(values)) {
          if (sops && typeof value === "string" && ENCRYPTED.test(value)) continue;
          const name = isObject(secret.metadata) ? secret.metadata.name : "?";
          findings.push({
            file,
            why: `Secret ${name} has an unencrypted value in ${field}.${key}`,
          });
        }
      }
    }
  }
  return findings;
}

/** Every Secret in a document: itself, or the items of a List. */
function secretsIn(doc: unknown): Record<string, unknown>[] {
  if (!isObject(doc)) return [];
  if (doc.kind === "Secret") return [doc];
  if (doc.kind === "List" && Array.isArray(doc.items)) return doc.items.flatMap(secretsIn);
  return [];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Findings under `<root>/infra`, skipping what git ignores (local age keys, generated files). */
export async function scanInfra(root: string, ignored: (path: string) => boolean = () => false) {
  const findings: Finding[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      const rel = relative(root, path);
      if (ignored(rel)) continue;
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile) findings.push(...scanText(rel, await Deno.readTextFile(path)));
    }
  };
  await walk(join(root, "infra"));
  return findings;
}
