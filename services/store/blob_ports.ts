/**
 * The blob store port: encrypted media as opaque bytes, written by resumable uploads. Two
 * adapters pass services/store/conformance/blob_suite.ts: the filesystem (fs/, the default,
 * under the data directory) and any S3-compatible store (s3/, multipart uploads). Blob
 * metadata (owner, grantees, sizes, expiry) lives in the main store, not here.
 */

export interface BlobWriter {
  /** Appends bytes; returns how many bytes of the upload are now durable (a resume point). */
  write(chunk: Uint8Array): Promise<number>;
  /** Makes every byte durable and the blob readable under its key; returns its size. */
  complete(): Promise<number>;
  /**
   * Lets go of the writer without completing (the client went away): what is durable stays
   * for a resume, anything only buffered is dropped.
   */
  close(): Promise<void>;
}

export interface BlobStore {
  readonly info: { backend: "fs" | "s3"; location: string };
  /** Starts an upload of a new blob; the returned upload id is opaque (save it to resume). */
  begin(key: string): Promise<string>;
  /**
   * Continues an upload after the last durable byte (`committed`), e.g. after the writing
   * instance died: the client re-sends from there.
   */
  resume(key: string, uploadId: string): Promise<{ writer: BlobWriter; committed: number }>;
  /** Drops an unfinished upload and what it wrote. */
  abort(key: string, uploadId: string): Promise<void>;
  /** The blob's bytes from `offset` on, or undefined when there is no such blob. */
  read(key: string, offset: number): Promise<ReadableStream<Uint8Array> | undefined>;
  size(key: string): Promise<number | undefined>;
  /** Deletes a completed blob; false when there was none. */
  delete(key: string): Promise<boolean>;
  /** A cheap round trip: an unreachable or misconfigured store fails here, at startup. */
  ping(): Promise<void>;
}

/** Blob keys: what the media service makes them (random ids), nothing path-like. */
export const BLOB_KEY = /^[A-Za-z0-9_-]{16,128}$/;

export class BlobInputError extends Error {
  override name = "BlobInputError";
}

export function checkBlobKey(key: string): void {
  if (typeof key !== "string" || !BLOB_KEY.test(key)) {
    throw new BlobInputError("a blob key is 16..128 characters of [A-Za-z0-9_-]");
  }
}

export function checkOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new BlobInputError("offset must be a non-negative integer");
  }
}
