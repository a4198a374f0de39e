/**
 * Storage port of the media service: one record per encrypted blob (who uploaded it, who may
 * download it, its size, digest and lifetime) and the bytes each account stores (its quota).
 * The bytes themselves are in the blob store (blob_ports.ts). Every adapter passes
 * services/store/conformance/media_suite.ts.
 */

import type { DeviceRef } from "./ports.ts";

declare module "./ports.ts" {
  interface StorePorts {
    media: MediaStore;
  }
}

export interface MediaRecord {
  mediaId: string;
  owner: DeviceRef;
  /** Declared ciphertext size in bytes. */
  size: number;
  chunkSize: number;
  /** SHA-256 of the whole ciphertext, checked when the upload completes. */
  sha256: Uint8Array;
  /** Accounts that may download besides the uploader's. */
  granteeAccounts: string[];
  /** An MLS group whose members at download time may download; empty when none. */
  granteeGroup: Uint8Array;
  /** The blob store's upload id (opaque). */
  uploadId: string;
  state: "uploading" | "complete";
  createdAtMs: number;
  /** The upload deadline while uploading; the end of retention once complete. */
  expiresAtMs: number;
}

export interface MediaStore {
  /**
   * Records a new upload and reserves its size against the owner account's quota: "quota"
   * (nothing written) when the account's stored bytes would pass `quotaBytes`.
   */
  create(record: MediaRecord, quotaBytes: number): Promise<"created" | "quota">;
  get(mediaId: string): Promise<MediaRecord | undefined>;
  /** Uploading → complete, with the retention end; false when not uploading. */
  complete(mediaId: string, expiresAtMs: number): Promise<boolean>;
  /** Deletes the record and releases its bytes from the owner's quota; the record or undefined. */
  delete(mediaId: string): Promise<MediaRecord | undefined>;
  /** Bytes the account's uploads hold (reserved ones included). */
  usage(accountId: string): Promise<number>;
  /** Records past `expiresAtMs` (abandoned uploads, expired blobs), at most `limit`. */
  expired(nowMs: number, limit: number): Promise<MediaRecord[]>;
}
