/**
 * Streaming attachment encryption (files larger than memory).
 *
 * Format (version 1):
 *   header  = "GYNA" || version (1 byte) || plaintext chunk size (u32 BE) || nonce prefix (7 bytes)
 *   chunk i = AES-256-GCM(key, nonce_i, aad = header, plaintext_i)   (ciphertext || 16-byte tag)
 *   nonce_i = prefix (7) || i (u32 BE) || last flag (1 byte: 1 on the final chunk, else 0)
 *
 * This is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015): the counter in
 * the nonce fixes each chunk's position and the last flag marks the end, so reordering,
 * duplication and truncation fail authentication; the random prefix and the header in the AAD
 * keep chunks from another file (even under the same key) from being spliced in. Every chunk but
 * the last holds exactly `chunkSize` plaintext bytes; the last holds 0..chunkSize (0 only for an
 * empty file).
 *
 * The digest put in the message is SHA-256 over the whole ciphertext (header and chunks).
 */
import { sha256 } from "@noble/hashes/sha2.js";

export const FORMAT_VERSION = 1;
export const HEADER_BYTES = 16;
export const TAG_BYTES = 16;
export const KEY_BYTES = 32;
export const DIGEST_BYTES = 32;
export const DEFAULT_CHUNK_SIZE = 64 * 1024;
export const MIN_CHUNK_SIZE = 1024;
export const MAX_CHUNK_SIZE = 4 * 1024 * 1024;
/** Default cap on plaintext size. */
export const DEFAULT_MAX_SIZE = 4 * 1024 * 1024 * 1024;
/** The chunk counter is 32 bits. */
const MAX_CHUNKS = 0xffff_ffff;
const MAGIC = [0x47, 0x59, 0x4e, 0x41]; // "GYNA"
const PREFIX_BYTES = 7;

export type AttachmentErrorCode =
  | "invalid-argument"
  | "too-large"
  | "bad-header"
  | "unsupported-version"
  | "truncated"
  | "corrupted"
  | "digest-mismatch";

export class AttachmentError extends Error {
  constructor(readonly code: AttachmentErrorCode, message: string) {
    super(message);
    this.name = "AttachmentError";
  }
}

export interface EncryptOptions {
  /** Plaintext bytes per chunk; default 64 KiB, 1 KiB..4 MiB. */
  chunkSize?: number;
  /** Reject input longer than this many plaintext bytes; default 4 GiB. */
  maxSize?: number;
  /**
   * Use this 32-byte key instead of a fresh random one (re-encryption, tests). Distinct files
   * stay separated by their random nonce prefix, but a fresh key per file is the norm.
   */
  key?: Uint8Array;
}

export interface EncryptedAttachment {
  /** Header followed by the encrypted chunks; upload as is. */
  ciphertext: ReadableStream<Uint8Array>;
  /** 32-byte AES-256 key to send inside the E2EE message. */
  key: Uint8Array;
  /** Resolves once the ciphertext stream has been fully read. */
  digest: Promise<Uint8Array>;
  /** Total ciphertext bytes; resolves with `digest`. */
  size: Promise<number>;
}

export interface DecryptOptions {
  key: Uint8Array;
  /** Digest from the message; checked before the final plaintext chunk is released. */
  digest: Uint8Array;
  /** Expected ciphertext size, if the message carries it; checked as bytes arrive. */
  size?: number;
  /** Reject attachments longer than this many plaintext bytes; default 4 GiB. */
  maxSize?: number;
}

/** Ciphertext size for a given plaintext size (for upload announcements and quotas). */
export function encryptedSize(plaintextSize: number, chunkSize = DEFAULT_CHUNK_SIZE): number {
  checkChunkSize(chunkSize);
  if (!Number.isSafeInteger(plaintextSize) || plaintextSize < 0) {
    throw new AttachmentError("invalid-argument", "plaintext size must be a non-negative integer");
  }
  const chunks = Math.max(1, Math.ceil(plaintextSize / chunkSize));
  return HEADER_BYTES + plaintextSize + chunks * TAG_BYTES;
}

/** Encrypts a plaintext stream; the ciphertext stream must be read for digest/size to resolve. */
export function encryptAttachment(
  plaintext: ReadableStream<Uint8Array>,
  options: EncryptOptions = {},
): EncryptedAttachment {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  checkChunkSize(chunkSize);
  const maxSize = checkMaxSize(options.maxSize, chunkSize);
  const key = options.key === undefined
    ? crypto.getRandomValues(new Uint8Array(KEY_BYTES))
    : checkKey(options.key).slice();
  const header = makeHeader(chunkSize, crypto.getRandomValues(new Uint8Array(PREFIX_BYTES)));
  const result = deferred<{ digest: Uint8Array; size: number }>();

  const hash = sha256.create();
  let cryptoKey: CryptoKey | undefined;
  let index = 0;
  let plaintextBytes = 0;
  let ciphertextBytes = 0;
  let pending = new Uint8Array(chunkSize);
  let filled = 0;

  const emit = async (
    controller: TransformStreamDefaultController<Uint8Array>,
    chunk: Uint8Array<ArrayBuffer>,
    last: boolean,
  ) => {
    cryptoKey ??= await importKey(key, "encrypt");
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv: nonce(header, index, last), additionalData: header },
        cryptoKey,
        chunk,
      ),
    );
    index++;
    hash.update(sealed);
    ciphertextBytes += sealed.length;
    controller.enqueue(sealed);
  };

  const transform = new TransformStream<Uint8Array, Uint8Array>({
    start(controller) {
      hash.update(header);
      ciphertextBytes += header.length;
      controller.enqueue(header.slice());
    },
    async transform(input, controller) {
      if (!(input instanceof Uint8Array)) {
        throw new AttachmentError("invalid-argument", "plaintext stream must yield Uint8Array");
      }
      plaintextBytes += input.length;
      if (plaintextBytes > maxSize) {
        throw new AttachmentError("too-large", `attachment exceeds ${maxSize} bytes`);
      }
      let offset = 0;
      while (offset < input.length) {
        if (filled === chunkSize) {
          // More data follows a full chunk, so that chunk is not the last one.
          await emit(controller, pending, false);
          pending = new Uint8Array(chunkSize);
          filled = 0;
        }
        const take = Math.min(chunkSize - filled, input.length - offset);
        pending.set(input.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
      }
    },
    async flush(controller) {
      await emit(controller, pending.subarray(0, filled), true);
      result.resolve({ digest: hash.digest(), size: ciphertextBytes });
    },
  });

  return {
    ciphertext: pipeWithFailure(plaintext, transform, result.reject),
    key,
    digest: handled(result.promise.then((r) => r.digest)),
    size: handled(result.promise.then((r) => r.size)),
  };
}

/** Decrypts and authenticates an attachment stream; errors with AttachmentError on tampering. */
export function decryptAttachment(
  ciphertext: ReadableStream<Uint8Array>,
  options: DecryptOptions,
): ReadableStream<Uint8Array> {
  const key = checkKey(options.key).slice();
  if (!(options.digest instanceof Uint8Array) || options.digest.length !== DIGEST_BYTES) {
    throw new AttachmentError("invalid-argument", "digest must be 32 bytes");
  }
  const expectedDigest = options.digest.slice();
  const expectedSize = options.size;
  if (expectedSize !== undefined && (!Number.isSafeInteger(expectedSize) || expectedSize < 0)) {
    throw new AttachmentError("invalid-argument", "size must be a non-negative integer");
  }
  const maxPlaintext = options.maxSize ?? DEFAULT_MAX_SIZE;
  if (!Number.isSafeInteger(maxPlaintext) || maxPlaintext < 0) {
    throw new AttachmentError("invalid-argument", "maxSize must be a non-negative integer");
  }

  const hash = sha256.create();
  let cryptoKey: CryptoKey | undefined;
  let header: Uint8Array<ArrayBuffer> | undefined;
  let segmentSize = 0;
  let maxCiphertext = 0;
  let index = 0;
  let received = 0;
  const headerBuffer = new Uint8Array(HEADER_BYTES);
  let headerFilled = 0;
  let pending = new Uint8Array(0);
  let filled = 0;

  const open = async (segment: Uint8Array<ArrayBuffer>, last: boolean): Promise<Uint8Array> => {
    cryptoKey ??= await importKey(key, "decrypt");
    const h = header!;
    try {
      return new Uint8Array(
        await crypto.subtle.decrypt(
          { name: "AES-GCM", iv: nonce(h, index, last), additionalData: h },
          cryptoKey,
          segment,
        ),
      );
    } catch {
      if (last && segment.length === segmentSize) {
        // A full-size final chunk that opens as a middle chunk means chunks were cut off.
        const asMiddle = await crypto.subtle.decrypt(
          { name: "AES-GCM", iv: nonce(h, index, false), additionalData: h },
          cryptoKey,
          segment,
        ).then(() => true, () => false);
        if (asMiddle) {
          throw new AttachmentError(
            "truncated",
            `attachment truncated: stream ended after chunk ${index} without the final chunk`,
          );
        }
      }
      throw new AttachmentError(
        "corrupted",
        `attachment chunk ${index} failed authentication ` +
          "(wrong key, or tampered, reordered, duplicated, truncated or spliced data)",
      );
    }
  };

  const transform = new TransformStream<Uint8Array, Uint8Array>({
    async transform(input, controller) {
      if (!(input instanceof Uint8Array)) {
        throw new AttachmentError("invalid-argument", "ciphertext stream must yield Uint8Array");
      }
      received += input.length;
      if (expectedSize !== undefined && received > expectedSize) {
        throw new AttachmentError("corrupted", `attachment is longer than ${expectedSize} bytes`);
      }
      let offset = 0;
      if (header === undefined) {
        const take = Math.min(HEADER_BYTES - headerFilled, input.length);
        headerBuffer.set(input.subarray(0, take), headerFilled);
        headerFilled += take;
        offset = take;
        if (headerFilled < HEADER_BYTES) return;
        const chunkSize = parseHeader(headerBuffer);
        header = headerBuffer;
        segmentSize = chunkSize + TAG_BYTES;
        maxCiphertext = maxEncryptedSize(maxPlaintext, chunkSize);
        pending = new Uint8Array(segmentSize);
        hash.update(header);
      }
      if (received > maxCiphertext) {
        throw new AttachmentError("too-large", `attachment exceeds ${maxPlaintext} bytes`);
      }
      while (offset < input.length) {
        if (filled === segmentSize) {
          hash.update(pending);
          controller.enqueue(await open(pending, false));
          index++;
          pending = new Uint8Array(segmentSize);
          filled = 0;
        }
        const take = Math.min(segmentSize - filled, input.length - offset);
        pending.set(input.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
      }
    },
    async flush(controller) {
      if (header === undefined) {
        throw new AttachmentError("truncated", "attachment truncated: incomplete header");
      }
      if (expectedSize !== undefined && received !== expectedSize) {
        throw new AttachmentError(
          "truncated",
          `attachment truncated: got ${received} of ${expectedSize} bytes`,
        );
      }
      if (filled < TAG_BYTES) {
        throw new AttachmentError("truncated", "attachment truncated: final chunk is incomplete");
      }
      const segment = pending.subarray(0, filled);
      // Authenticate first: a tampered chunk gets the more specific error.
      const plaintext = await open(segment, true);
      hash.update(segment);
      if (!constantTimeEqual(hash.digest(), expectedDigest)) {
        throw new AttachmentError(
          "digest-mismatch",
          "attachment digest does not match the one in the message",
        );
      }
      controller.enqueue(plaintext);
    },
  });

  return pipeWithFailure(ciphertext, transform, () => {});
}

function pipeWithFailure(
  source: ReadableStream<Uint8Array>,
  transform: TransformStream<Uint8Array, Uint8Array>,
  onFailure: (reason: unknown) => void,
): ReadableStream<Uint8Array> {
  if (!(source instanceof ReadableStream)) {
    throw new AttachmentError("invalid-argument", "input must be a ReadableStream<Uint8Array>");
  }
  source.pipeTo(transform.writable).catch(onFailure);
  return transform.readable;
}

function makeHeader(chunkSize: number, prefix: Uint8Array): Uint8Array<ArrayBuffer> {
  const header = new Uint8Array(HEADER_BYTES);
  header.set(MAGIC, 0);
  header[4] = FORMAT_VERSION;
  new DataView(header.buffer).setUint32(5, chunkSize);
  header.set(prefix, 9);
  return header;
}

function parseHeader(header: Uint8Array): number {
  for (let i = 0; i < MAGIC.length; i++) {
    if (header[i] !== MAGIC[i]) {
      throw new AttachmentError("bad-header", "not a Guardyn attachment (bad magic)");
    }
  }
  if (header[4] !== FORMAT_VERSION) {
    throw new AttachmentError(
      "unsupported-version",
      `unsupported attachment format version ${header[4]}`,
    );
  }
  const chunkSize = new DataView(header.buffer, header.byteOffset).getUint32(5);
  if (chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new AttachmentError("bad-header", `attachment chunk size ${chunkSize} out of range`);
  }
  return chunkSize;
}

function nonce(header: Uint8Array, index: number, last: boolean): Uint8Array<ArrayBuffer> {
  const iv = new Uint8Array(12);
  iv.set(header.subarray(9, 9 + PREFIX_BYTES), 0);
  new DataView(iv.buffer).setUint32(PREFIX_BYTES, index);
  iv[11] = last ? 1 : 0;
  return iv;
}

function maxEncryptedSize(maxPlaintext: number, chunkSize: number): number {
  return encryptedSize(maxPlaintext, chunkSize);
}

function checkChunkSize(chunkSize: number): void {
  if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new AttachmentError(
      "invalid-argument",
      `chunkSize must be an integer in ${MIN_CHUNK_SIZE}..${MAX_CHUNK_SIZE}`,
    );
  }
}

function checkMaxSize(maxSize: number | undefined, chunkSize: number): number {
  const value = maxSize ?? DEFAULT_MAX_SIZE;
  const ceiling = Math.min(
    Number.MAX_SAFE_INTEGER - MAX_CHUNKS * TAG_BYTES,
    chunkSize * MAX_CHUNKS,
  );
  if (!Number.isSafeInteger(value) || value < 0 || value > ceiling) {
    throw new AttachmentError("invalid-argument", `maxSize must be an integer in 0..${ceiling}`);
  }
  return value;
}

function checkKey(key: Uint8Array): Uint8Array {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) {
    throw new AttachmentError("invalid-argument", "attachment key must be 32 bytes");
  }
  return key;
}

function importKey(key: Uint8Array<ArrayBuffer>, usage: "encrypt" | "decrypt"): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", key, "AES-GCM", false, [usage]);
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise: handled(promise), resolve, reject };
}

/** The caller may never await a result (e.g. an abandoned upload); do not crash on that. */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
