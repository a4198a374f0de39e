/**
 * The Double Ratchet's store of skipped message keys (MKSKIPPED in the spec, section 3.2), bounded
 * and expiring so a peer, or an attacker who drops messages, cannot make it grow without limit:
 * - at most MAX_SKIPPED_KEYS keys; adding more evicts the oldest first;
 * - a key expires after SKIPPED_KEY_MAX_RATCHET_STEPS later DH ratchet steps on receive, or
 *   SKIPPED_KEY_MAX_AGE_MS after it was stored. Time is a caller-supplied `now` (milliseconds):
 *   nothing here reads a clock.
 */
import type { ByteReader, ByteWriter } from "./codec.ts";
import { CryptoError } from "./errors.ts";
import { type Bytes, toHex, wipe } from "./primitives.ts";

export const MAX_SKIPPED_KEYS = 2000;
export const SKIPPED_KEY_MAX_RATCHET_STEPS = 50;
export const SKIPPED_KEY_MAX_AGE_MS = 30 * 24 * 60 * 60 * 1000;

export interface SkippedKey {
  /** The sender's ratchet public key (raw 32 bytes) of the chain the key belongs to. */
  readonly ratchetKey: Bytes;
  /** The message number within that chain. */
  readonly n: number;
  readonly messageKey: Bytes;
  /** The receiving DH ratchet step count when the key was stored. */
  readonly step: number;
  /** `now` when the key was stored (milliseconds). */
  readonly storedAt: number;
}

function idOf(ratchetKey: Uint8Array, n: number): string {
  return `${toHex(ratchetKey)}:${n}`;
}

export class SkippedKeyStore {
  // Insertion order is age order: eviction takes the first entries, serialization keeps the order.
  readonly #keys = new Map<string, SkippedKey>();

  get size(): number {
    return this.#keys.size;
  }

  get(ratchetKey: Uint8Array, n: number): SkippedKey | undefined {
    return this.#keys.size === 0 ? undefined : this.#keys.get(idOf(ratchetKey, n));
  }

  /** Removes a key once it has decrypted its message, so a replay finds nothing. */
  delete(key: SkippedKey): void {
    this.#keys.delete(idOf(key.ratchetKey, key.n));
    wipe(key.messageKey);
  }

  /** Adds keys, then evicts the oldest beyond MAX_SKIPPED_KEYS. */
  addAll(keys: readonly SkippedKey[]): void {
    for (const key of keys) this.#keys.set(idOf(key.ratchetKey, key.n), key);
    for (const [id, key] of this.#keys) {
      if (this.#keys.size <= MAX_SKIPPED_KEYS) break;
      this.#keys.delete(id);
      wipe(key.messageKey);
    }
  }

  /** Drops keys that are too many ratchet steps or too much time old. */
  purge(currentStep: number, now: number): void {
    for (const [id, key] of this.#keys) {
      if (
        currentStep - key.step > SKIPPED_KEY_MAX_RATCHET_STEPS ||
        now - key.storedAt > SKIPPED_KEY_MAX_AGE_MS
      ) {
        this.#keys.delete(id);
        wipe(key.messageKey);
      }
    }
  }

  write(writer: ByteWriter): void {
    writer.u32(this.#keys.size);
    for (const key of this.#keys.values()) {
      writer.bytes(key.ratchetKey).u32(key.n).bytes(key.messageKey).u32(key.step).u64(
        key.storedAt,
      );
    }
  }

  static read(reader: ByteReader): SkippedKeyStore {
    const count = reader.u32();
    if (count > MAX_SKIPPED_KEYS) {
      throw new CryptoError("malformed", "serialized state holds too many skipped keys");
    }
    const store = new SkippedKeyStore();
    for (let i = 0; i < count; i++) {
      const ratchetKey = reader.bytes(32);
      const n = reader.u32();
      const messageKey = reader.bytes(32);
      const step = reader.u32();
      const storedAt = reader.u64();
      const id = idOf(ratchetKey, n);
      if (store.#keys.has(id)) throw new CryptoError("malformed", "duplicate skipped key");
      store.#keys.set(id, { ratchetKey, n, messageKey, step, storedAt });
    }
    return store;
  }
}
