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
 * The digest put in the message covers the whole ciphertext as a one-level hash list:
 *   digest = SHA-256("guardyn-attachment-digest-v1" || header || SHA-256(chunk 0) || ... )
 * Chunk boundaries follow from the header and the total length, so this identifies the
 * ciphertext exactly like a flat SHA-256, but each chunk hash is a one-shot WebCrypto call that
 * runs beside the encryption of its neighbours instead of one long sequential JavaScript hash.
 *
 * Up to WINDOW chunks are encrypted (or decrypted) and hashed concurrently; results are released
 * strictly in order, so memory stays at a few chunks regardless of file size.
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
const DIGEST_LABEL = new TextEncoder().encode("guardyn-attachment-digest-v1");
/** Chunks in flight at once: enough to keep WebCrypto's worker threads busy. */
const WINDOW = 4;

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

/**
 * The attachment digest of a ciphertext, from its bytes alone (no key): what `encryptAttachment`
 * resolves and the message carries. The media service computes it over the stored blob, so one
 * digest serves both the upload check and the receiver's check. Feed bytes in any pieces.
 */
export function attachmentDigester(): {
  update(bytes: Uint8Array): void;
  finish(): Uint8Array;
} {
  const walker = new CiphertextWalker();
  let outer: ReturnType<typeof newDigest> | undefined;
  let leaf = sha256.create();
  return {
    update(bytes) {
      walker.feed(bytes, (header) => (outer = newDigest(header)), (part, leafDone) => {
        leaf.update(part);
        if (!leafDone) return;
        outer!.update(leaf.digest());
        leaf = sha256.create();
      });
    },
    finish() {
      if (!outer) throw new AttachmentError("truncated", "the ciphertext has no complete header");
      if (walker.inLeaf > 0) outer.update(leaf.digest());
      return outer.digest();
    },
  };
}

/**
 * The attachment digest of a ciphertext stream, as `attachmentDigester` computes it, with each
 * chunk's hash done by WebCrypto (native code; a few chunks in flight): several times faster
 * on large blobs, which is what the media service checks on every completed upload.
 */
export async function digestAttachment(
  ciphertext: AsyncIterable<Uint8Array>,
): Promise<Uint8Array> {
  const walker = new CiphertextWalker();
  let outer: ReturnType<typeof newDigest> | undefined;
  let leaf: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  let filled = 0;
  const pending: Promise<Uint8Array>[] = [];
  const settle = async (keep: number) => {
    while (pending.length > keep) outer!.update(await pending.shift()!);
  };
  for await (const bytes of ciphertext) {
    walker.feed(bytes, (header) => {
      outer = newDigest(header);
      leaf = new Uint8Array(walker.leafBytes);
    }, (part, leafDone) => {
      leaf.set(part, filled);
      filled += part.length;
      if (!leafDone) return;
      pending.push(sha256Leaf(leaf));
      leaf = new Uint8Array(walker.leafBytes);
      filled = 0;
    });
    await settle(8);
  }
  if (!outer) throw new AttachmentError("truncated", "the ciphertext has no complete header");
  if (filled > 0) pending.push(sha256Leaf(leaf.slice(0, filled)));
  await settle(0);
  return outer.digest();
}

/** Walks a ciphertext fed in any pieces: its header once, then its leaves (chunk + tag). */
class CiphertextWalker {
  readonly #header = new Uint8Array(HEADER_BYTES);
  #headerFilled = 0;
  /** Bytes per leaf, known once the header is. */
  leafBytes = 0;
  /** Bytes of the current, unfinished leaf. */
  inLeaf = 0;

  feed(
    bytes: Uint8Array,
    onHeader: (header: Uint8Array) => void,
    onPart: (part: Uint8Array, leafDone: boolean) => void,
  ): void {
    let at = 0;
    if (this.#headerFilled < HEADER_BYTES) {
      const n = Math.min(HEADER_BYTES - this.#headerFilled, bytes.length);
      this.#header.set(bytes.subarray(0, n), this.#headerFilled);
      this.#headerFilled += n;
      at = n;
      if (this.#headerFilled < HEADER_BYTES) return;
      this.leafBytes = parseHeader(this.#header) + TAG_BYTES;
      onHeader(this.#header);
    }
    while (at < bytes.length) {
      const n = Math.min(this.leafBytes - this.inLeaf, bytes.length - at);
      this.inLeaf += n;
      const done = this.inLeaf === this.leafBytes;
      if (done) this.inLeaf = 0;
      onPart(bytes.subarray(at, at + n), done);
      at += n;
    }
  }
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

  const digest = newDigest(header);
  const inFlight = new OrderedWindow<Uint8Array<ArrayBuffer>>();
  let cryptoKey: CryptoKey;
  let index = 0;
  let plaintextBytes = 0;
  let ciphertextBytes = 0;
  const pending = new Uint8Array(chunkSize);
  let filled = 0;

  const release =
    (controller: TransformStreamDefaultController<Uint8Array>) =>
    async (sealed: Uint8Array<ArrayBuffer>, leaf: Promise<Uint8Array>) => {
      digest.update(await leaf);
      ciphertextBytes += sealed.length;
      controller.enqueue(sealed);
    };

  const dispatch = (chunk: Uint8Array<ArrayBuffer>, last: boolean) => {
    if (index > MAX_CHUNKS) throw new AttachmentError("too-large", "too many chunks");
    // WebCrypto copies its input when called, so `pending` can be refilled right away.
    const sealed = crypto.subtle.encrypt(
      { name: "AES-GCM", iv: nonce(header, index, last), additionalData: header },
      cryptoKey,
      chunk,
    ).then((buffer) => new Uint8Array(buffer));
    inFlight.push(sealed, sealed.then(sha256Leaf));
    index++;
  };

  const transform = new TransformStream<Uint8Array, Uint8Array>({
    async start(controller) {
      cryptoKey = await importKey(key, "encrypt");
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
          dispatch(pending, false);
          filled = 0;
          await inFlight.releaseDownTo(WINDOW - 1, release(controller));
        }
        const take = Math.min(chunkSize - filled, input.length - offset);
        pending.set(input.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
      }
    },
    async flush(controller) {
      dispatch(pending.subarray(0, filled), true);
      await inFlight.releaseDownTo(0, release(controller));
      result.resolve({ digest: digest.digest(), size: ciphertextBytes });
    },
  });

  return {
    ciphertext: pipeWithFailure(plaintext, transform, result.reject),
    key,
    digest: handled(result.promise.then((r) => r.digest)),
    size: handled(result.promise.then((r) => r.size)),
  };
}

/**
 * Decrypts and authenticates an attachment stream; errors with AttachmentError on tampering.
 *
 * UNVERIFIED UNTIL THE STREAM ENDS: each chunk is authenticated on its own, but the whole-file
 * digest from the message (which binds these bytes to what the sender sent) is checked only at
 * the end, before the last chunk is released. Earlier chunks reach the consumer before that
 * check. A consumer must not show, open, parse or forward any plaintext before the stream has
 * closed without error; to write a file, use the SDK's `saveAttachment` (client/attachments.ts),
 * which writes to a private temporary file and renames it into place only after the digest
 * matched.
 */
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

  let digest: ReturnType<typeof newDigest>;
  const inFlight = new OrderedWindow<Uint8Array<ArrayBuffer>>();
  let cryptoKey: CryptoKey;
  let header: Uint8Array<ArrayBuffer> | undefined;
  let segmentSize = 0;
  let maxCiphertext = 0;
  let index = 0;
  let received = 0;
  const headerBuffer = new Uint8Array(HEADER_BYTES);
  let headerFilled = 0;
  let pending = new Uint8Array(0);
  let filled = 0;

  const open = async (
    h: Uint8Array<ArrayBuffer>,
    at: number,
    segment: Uint8Array<ArrayBuffer>,
    last: boolean,
  ): Promise<Uint8Array<ArrayBuffer>> => {
    const attempt = (asLast: boolean) =>
      crypto.subtle.decrypt(
        { name: "AES-GCM", iv: nonce(h, at, asLast), additionalData: h },
        cryptoKey,
        segment,
      );
    // Start the fallback check now, while `segment` still holds this chunk's bytes.
    const asMiddle = last && segment.length === segmentSize
      ? attempt(false).then(() => true, () => false)
      : undefined;
    try {
      return new Uint8Array(await attempt(last));
    } catch {
      if (asMiddle !== undefined && await asMiddle) {
        // A full-size final chunk that opens as a middle chunk means chunks were cut off.
        throw new AttachmentError(
          "truncated",
          `attachment truncated: stream ended after chunk ${at} without the final chunk`,
        );
      }
      throw new AttachmentError(
        "corrupted",
        `attachment chunk ${at} failed authentication ` +
          "(wrong key, or tampered, reordered, duplicated, truncated or spliced data)",
      );
    }
  };

  const dispatch = (segment: Uint8Array<ArrayBuffer>, last: boolean) => {
    if (index > MAX_CHUNKS) throw new AttachmentError("too-large", "too many chunks");
    // Both WebCrypto calls copy `segment` synchronously, so the buffer can be refilled.
    inFlight.push(open(header!, index, segment, last), sha256Leaf(segment));
    index++;
  };

  const release =
    (controller: TransformStreamDefaultController<Uint8Array>) =>
    async (plaintext: Uint8Array<ArrayBuffer>, leaf: Promise<Uint8Array>) => {
      digest.update(await leaf);
      controller.enqueue(plaintext);
    };

  const transform = new TransformStream<Uint8Array, Uint8Array>({
    async start() {
      cryptoKey = await importKey(key, "decrypt");
    },
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
        maxCiphertext = encryptedSize(maxPlaintext, chunkSize);
        pending = new Uint8Array(segmentSize);
        digest = newDigest(header);
      }
      if (received > maxCiphertext) {
        throw new AttachmentError("too-large", `attachment exceeds ${maxPlaintext} bytes`);
      }
      while (offset < input.length) {
        if (filled === segmentSize) {
          dispatch(pending, false);
          filled = 0;
          await inFlight.releaseDownTo(WINDOW - 1, release(controller));
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
      dispatch(pending.subarray(0, filled), true);
      await inFlight.releaseDownTo(1, release(controller));
      // Authenticate the final chunk first (a tampered chunk gets the more specific error),
      // then hold its plaintext back until the whole-file digest matches.
      const last = await inFlight.shift();
      digest.update(await last.leaf);
      if (!constantTimeEqual(digest.digest(), expectedDigest)) {
        throw new AttachmentError(
          "digest-mismatch",
          "attachment digest does not match the one in the message",
        );
      }
      controller.enqueue(last.value);
    },
  });

  return pipeWithFailure(ciphertext, transform, () => {});
}

function newDigest(header: Uint8Array) {
  const outer = sha256.create();
  outer.update(DIGEST_LABEL);
  outer.update(header);
  return outer;
}

async function sha256Leaf(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

interface ChunkJob<T> {
  value: T;
  leaf: Promise<Uint8Array>;
}

/** Chunk jobs that run concurrently but are consumed strictly in order. */
class OrderedWindow<T> {
  #jobs: Promise<ChunkJob<T>>[] = [];

  push(value: Promise<T>, leaf: Promise<Uint8Array>): void {
    // Failures surface when the job is shifted; mark both as handled until then.
    leaf.catch(() => {});
    const job = value.then((v) => ({ value: v, leaf }));
    job.catch(() => {});
    this.#jobs.push(job);
  }

  shift(): Promise<ChunkJob<T>> {
    const job = this.#jobs.shift();
    if (job === undefined) throw new Error("no chunk in flight");
    return job;
  }

  async releaseDownTo(
    remaining: number,
    release: (value: T, leaf: Promise<Uint8Array>) => Promise<void>,
  ): Promise<void> {
    while (this.#jobs.length > remaining) {
      const { value, leaf } = await this.shift();
      await release(value, leaf);
    }
  }
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
