/**
 * Where the access-token signing keys come from: TOKEN_KEYS_FILE (a Kubernetes Secret in a
 * cluster), or, on the embedded single-machine setup only, a key file generated next to the
 * SQLite database on first start (owner-only permissions).
 */

import { dirname, join } from "node:path";
import type { Logger } from "./log.ts";
import { ensurePrivateDirectory } from "./private_files.ts";
import {
  generateTokenKeyFile,
  importTokenKeys,
  type TokenKeyFile,
  type TokenKeys,
} from "./tokens.ts";

/**
 * `keysFile` when configured; otherwise a key file beside the embedded database at
 * `embeddedDatabasePath` (undefined on a cluster store, where TOKEN_KEYS_FILE is required).
 */
export async function loadTokenKeys(
  keysFile: string | undefined,
  embeddedDatabasePath: string | undefined,
  log: Logger,
): Promise<TokenKeys> {
  if (keysFile !== undefined) {
    return await importTokenKeys(await readKeyFile(keysFile));
  }
  if (embeddedDatabasePath === undefined) {
    throw new Error("TOKEN_KEYS_FILE is required with a cluster store");
  }
  const path = join(dirname(embeddedDatabasePath), "token-keys.json");
  try {
    return await importTokenKeys(await readKeyFile(path));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await ensurePrivateDirectory(dirname(path), { tightened: [] });
  const file = await generateTokenKeyFile();
  await Deno.writeTextFile(path, JSON.stringify(file, null, 2) + "\n", {
    mode: 0o600,
    createNew: true,
  });
  log.info("generated token signing keys for the embedded setup", { path });
  return await importTokenKeys(file);
}

async function readKeyFile(path: string): Promise<TokenKeyFile> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw error;
    throw new Error(`cannot read token key file ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text) as TokenKeyFile;
  } catch {
    throw new Error(`token key file ${path} is not valid JSON`);
  }
}
