/**
 * The key that encrypts a profile at rest, derived from the user's passphrase with Argon2id
 * (RFC 9106) by the native @node-rs/argon2 (off the event loop). The cost is recorded in the
 * profile header so it can be raised for new profiles without breaking old ones.
 */

import { hashRaw } from "@node-rs/argon2";
import { GuardynClientError } from "./errors.ts";

/** `Algorithm.Argon2id` of @node-rs/argon2 (an ambient const enum, not importable as a value). */
const ARGON2ID = 2;

export interface KdfCost {
  /** Memory in KiB. */
  memoryKiB: number;
  iterations: number;
  parallelism: number;
}

/** RFC 9106's second recommended option (64 MiB, 3 passes), one lane: ~150 ms here. */
export const DEFAULT_KDF_COST: KdfCost = { memoryKiB: 64 * 1024, iterations: 3, parallelism: 1 };

/** Bounds on a cost read from a file, so a tampered header cannot demand absurd work. */
export const KDF_LIMITS = {
  memoryKiB: { min: 8, max: 1024 * 1024 },
  iterations: { min: 1, max: 20 },
  parallelism: { min: 1, max: 16 },
} as const;

export const SALT_BYTES = 16;
export const PASSPHRASE_MAX_CHARS = 1024;

export function checkKdfCost(cost: KdfCost): KdfCost {
  for (const key of ["memoryKiB", "iterations", "parallelism"] as const) {
    const value = cost[key];
    const { min, max } = KDF_LIMITS[key];
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new GuardynClientError(
        "PROFILE_CORRUPT",
        `key derivation ${key} must be an integer in ${min}..${max}`,
      );
    }
  }
  if (cost.memoryKiB < 8 * cost.parallelism) {
    throw new GuardynClientError("PROFILE_CORRUPT", "Argon2 needs at least 8 KiB per lane");
  }
  return cost;
}

export function checkPassphrase(passphrase: string): string {
  const length = [...passphrase].length;
  if (length < 1 || length > PASSPHRASE_MAX_CHARS) {
    throw new GuardynClientError(
      "BAD_INPUT",
      `a passphrase has 1..${PASSPHRASE_MAX_CHARS} characters`,
    );
  }
  return passphrase.normalize("NFKC");
}

/** Derives the 32-byte profile key and imports it as a non-extractable AES-256-GCM key. */
export async function deriveProfileKey(
  passphrase: string,
  salt: Uint8Array,
  cost: KdfCost,
): Promise<CryptoKey> {
  checkKdfCost(cost);
  const raw = await hashRaw(checkPassphrase(passphrase), {
    algorithm: ARGON2ID,
    salt,
    memoryCost: cost.memoryKiB,
    timeCost: cost.iterations,
    parallelism: cost.parallelism,
    outputLen: 32,
  });
  const bytes = new Uint8Array(raw);
  try {
    return await crypto.subtle.importKey("raw", bytes, "AES-GCM", false, ["encrypt", "decrypt"]);
  } finally {
    bytes.fill(0);
    raw.fill(0);
  }
}
