/**
 * Where the access-token signing keys come from: TOKEN_KEYS_FILE (a Kubernetes Secret in a
 * cluster), or, on the embedded single-machine setup only, a key file generated next to the
 * SQLite database on first start (owner-only permissions).
 */

import { dirname, join } from "node:path";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import {
  generateTokenKeyFile,
  importTokenKeys,
  type TokenKeyFile,
  type TokenKeys,
} from "./tokens.ts";

export async function loadTokenKeys(config: Config, log: Logger): Promise<TokenKeys> {
  if (config.tokens.keysFile !== undefined) {
    return await importTokenKeys(await readKeyFile(config.tokens.keysFile));
  }
  if (config.store.backend !== "sqlite") {
    throw new Error("TOKEN_KEYS_FILE is required with a cluster store");
  }
  const path = join(dirname(config.store.path), "token-keys.json");
  try {
    return await importTokenKeys(await readKeyFile(path));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await Deno.mkdir(dirname(path), { recursive: true });
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
