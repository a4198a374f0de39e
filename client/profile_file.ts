/**
 * One device profile on disk: a single file encrypted with AES-256-GCM under a key derived from
 * the passphrase (kdf.ts). Writes are atomic (temporary file, fsync, rename), and a lock file
 * keeps a second process from opening the same profile.
 *
 * Format (all integers big-endian):
 *   magic "GDNPROF1" (8) || kdf id (u8, 1 = Argon2id) || memory KiB (u32) || iterations (u32)
 *   || parallelism (u8) || salt (16) || nonce (12) || AES-256-GCM(payload) with the whole
 *   header (everything before the ciphertext) as associated data.
 * A fresh random nonce per write: a profile is written far fewer than 2^32 times.
 */

import { dirname, join } from "node:path";
import { GuardynClientError } from "./errors.ts";
import {
  checkKdfCost,
  DEFAULT_KDF_COST,
  deriveProfileKey,
  type KdfCost,
  SALT_BYTES,
} from "./kdf.ts";

const MAGIC = new TextEncoder().encode("GDNPROF1");
const KDF_ARGON2ID = 1;
const NONCE_BYTES = 12;
const HEADER_BYTES = MAGIC.length + 1 + 4 + 4 + 1 + SALT_BYTES + NONCE_BYTES;
/** A profile holds keys, sessions and bounded history: far below this. */
export const PROFILE_MAX_BYTES = 64 * 1024 * 1024;

interface Header {
  cost: KdfCost;
  salt: Uint8Array<ArrayBuffer>;
}

function encodeHeader(header: Header, nonce: Uint8Array): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(HEADER_BYTES);
  const view = new DataView(bytes.buffer);
  bytes.set(MAGIC, 0);
  let at = MAGIC.length;
  view.setUint8(at, KDF_ARGON2ID);
  view.setUint32(at + 1, header.cost.memoryKiB);
  view.setUint32(at + 5, header.cost.iterations);
  view.setUint8(at + 9, header.cost.parallelism);
  at += 10;
  bytes.set(header.salt, at);
  bytes.set(nonce, at + SALT_BYTES);
  return bytes;
}

function decodeHeader(file: Uint8Array): Header & { nonce: Uint8Array<ArrayBuffer> } {
  const corrupt = (why: string) =>
    new GuardynClientError("PROFILE_CORRUPT", `not a profile: ${why}`);
  if (file.length < HEADER_BYTES + 16) throw corrupt("file too short");
  if (!MAGIC.every((byte, i) => file[i] === byte)) throw corrupt("unknown format");
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  let at = MAGIC.length;
  if (view.getUint8(at) !== KDF_ARGON2ID) throw corrupt("unknown key derivation");
  const cost = checkKdfCost({
    memoryKiB: view.getUint32(at + 1),
    iterations: view.getUint32(at + 5),
    parallelism: view.getUint8(at + 9),
  });
  at += 10;
  return {
    cost,
    salt: file.slice(at, at + SALT_BYTES),
    nonce: file.slice(at + SALT_BYTES, at + SALT_BYTES + NONCE_BYTES),
  };
}

export class ProfileFile {
  #closed = false;
  #released = false;
  #writes: Promise<void> = Promise.resolve();

  private constructor(
    readonly path: string,
    private readonly key: CryptoKey,
    private readonly header: Header,
    private readonly lock: Deno.FsFile,
    /** The payload as last read or written. */
    public payload: Uint8Array,
  ) {}

  static async exists(path: string): Promise<boolean> {
    try {
      return (await Deno.stat(path)).isFile;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  }

  /** Creates a new profile holding `payload`; PROFILE_EXISTS when the file is there. */
  static async create(
    path: string,
    passphrase: string,
    payload: Uint8Array,
    cost: KdfCost = DEFAULT_KDF_COST,
  ): Promise<ProfileFile> {
    await Deno.mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const lock = await acquireLock(path);
    try {
      if (await ProfileFile.exists(path)) {
        throw new GuardynClientError("PROFILE_EXISTS", `a profile exists at ${path}`);
      }
      const header = {
        cost: checkKdfCost(cost),
        salt: crypto.getRandomValues(new Uint8Array(SALT_BYTES)),
      };
      const key = await deriveProfileKey(passphrase, header.salt, header.cost);
      const profile = new ProfileFile(path, key, header, lock, payload);
      await profile.write(payload);
      return profile;
    } catch (error) {
      lock.close();
      throw error;
    }
  }

  /** Opens and decrypts an existing profile; BAD_PASSPHRASE when it does not open. */
  static async open(path: string, passphrase: string): Promise<ProfileFile> {
    const lock = await acquireLock(path);
    try {
      let file: Uint8Array;
      try {
        const size = (await Deno.stat(path)).size;
        if (size > PROFILE_MAX_BYTES) {
          throw new GuardynClientError(
            "PROFILE_CORRUPT",
            `profile is larger than ${PROFILE_MAX_BYTES} bytes`,
          );
        }
        file = await Deno.readFile(path);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) {
          throw new GuardynClientError("PROFILE_MISSING", `no profile at ${path}`);
        }
        throw error;
      }
      const header = decodeHeader(file);
      const key = await deriveProfileKey(passphrase, header.salt, header.cost);
      let payload: Uint8Array;
      try {
        payload = new Uint8Array(
          await crypto.subtle.decrypt(
            { name: "AES-GCM", iv: header.nonce, additionalData: file.slice(0, HEADER_BYTES) },
            key,
            file.slice(HEADER_BYTES),
          ),
        );
      } catch {
        throw new GuardynClientError(
          "BAD_PASSPHRASE",
          "the passphrase does not open this profile (or the file was modified)",
        );
      }
      return new ProfileFile(path, key, { cost: header.cost, salt: header.salt }, lock, payload);
    } catch (error) {
      lock.close();
      throw error;
    }
  }

  /** Encrypts and atomically replaces the file. */
  write(payload: Uint8Array): Promise<void> {
    // Writes run one at a time, so destroy() can wait for the one in progress.
    const result = this.#writes.then(() => this.#write(payload));
    this.#writes = result.catch(() => {});
    return result;
  }

  async #write(payload: Uint8Array): Promise<void> {
    if (this.#closed) throw new GuardynClientError("CLOSED", "the profile is closed");
    const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
    const header = encodeHeader(this.header, nonce);
    const ciphertext = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv: nonce, additionalData: header },
        this.key,
        payload as Uint8Array<ArrayBuffer>,
      ),
    );
    if (header.length + ciphertext.length > PROFILE_MAX_BYTES) {
      throw new GuardynClientError(
        "BAD_INPUT",
        `the profile would exceed ${PROFILE_MAX_BYTES} bytes`,
      );
    }
    const temporary = join(dirname(this.path), `.${crypto.randomUUID()}.tmp`);
    const file = await Deno.open(temporary, { write: true, createNew: true, mode: 0o600 });
    try {
      await writeAll(file, header);
      await writeAll(file, ciphertext);
      await file.syncData();
    } finally {
      file.close();
    }
    try {
      await Deno.rename(temporary, this.path);
    } catch (error) {
      await Deno.remove(temporary).catch(() => {});
      throw error;
    }
    await syncDirectory(dirname(this.path));
    this.payload = payload;
  }

  /** Deletes the profile (a revoked device wipes its state); no later write brings it back. */
  async destroy(): Promise<void> {
    this.#closed = true;
    await this.#writes;
    await Deno.remove(this.path).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    this.close();
    await Deno.remove(lockPath(this.path)).catch(() => {});
  }

  close(): void {
    this.#closed = true;
    if (this.#released) return;
    this.#released = true;
    this.lock.close();
  }
}

const lockPath = (path: string) => `${path}.lock`;

async function acquireLock(path: string): Promise<Deno.FsFile> {
  const lock = await Deno.open(lockPath(path), { create: true, write: true, mode: 0o600 });
  if (!await lock.tryLock(true)) {
    lock.close();
    throw new GuardynClientError(
      "PROFILE_LOCKED",
      `the profile ${path} is open in another process`,
    );
  }
  return lock;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}

/** Makes the rename durable; not every platform can open a directory, which is fine. */
async function syncDirectory(path: string): Promise<void> {
  try {
    const dir = await Deno.open(path, { read: true });
    try {
      await dir.sync();
    } finally {
      dir.close();
    }
  } catch {
    // best effort
  }
}
