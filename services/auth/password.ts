/**
 * Password hashing with Argon2id at the OWASP-recommended cost (19 MiB, 2 passes, 1 lane),
 * encoded as a PHC string so the cost can be raised later without breaking old hashes.
 *
 * @node-rs/argon2 is native and runs on a worker thread pool: a ~100 ms hash does not block the
 * event loop that serves every other call (a WebAssembly build did).
 */

import { hash, verify } from "@node-rs/argon2";

/** `Algorithm.Argon2id` of @node-rs/argon2 (an ambient const enum, not importable as a value). */
const ARGON2ID = 2;

export interface Argon2Cost {
  /** Memory in KiB. */
  memoryKiB: number;
  iterations: number;
  parallelism: number;
}

/** OWASP Password Storage Cheat Sheet, Argon2id option 1 equivalent. */
export const OWASP_ARGON2ID: Argon2Cost = { memoryKiB: 19 * 1024, iterations: 2, parallelism: 1 };

export function hashPassword(password: string, cost: Argon2Cost = OWASP_ARGON2ID): Promise<string> {
  return hash(password.normalize("NFKC"), {
    algorithm: ARGON2ID,
    memoryCost: cost.memoryKiB,
    timeCost: cost.iterations,
    parallelism: cost.parallelism,
    outputLen: 32,
  });
}

/** Constant-time inside the library (it compares the derived hashes, not the strings). */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  try {
    return await verify(encoded, password.normalize("NFKC"));
  } catch {
    return false;
  }
}

/**
 * A hash to verify against when the account does not exist, so an unknown username costs the
 * same time as a wrong password and login timing reveals nothing.
 */
export function dummyHash(cost: Argon2Cost = OWASP_ARGON2ID): Promise<string> {
  return hashPassword(crypto.randomUUID(), cost);
}
