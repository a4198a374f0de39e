/** Pure checks of media records shared by the adapters. */
import { StoreInputError } from "./errors.ts";
import { checkDevice } from "./mailbox_rules.ts";
import type { MediaRecord } from "./media_ports.ts";

export const MEDIA_ID = /^[A-Za-z0-9_-]{16,64}$/;

export function checkMediaId(mediaId: string): void {
  if (typeof mediaId !== "string" || !MEDIA_ID.test(mediaId)) {
    throw new StoreInputError("mediaId must be 16..64 characters of [A-Za-z0-9_-]");
  }
}

export function validateMediaRecord(record: MediaRecord): void {
  checkMediaId(record.mediaId);
  checkDevice(record.owner, "owner");
  for (const [value, what] of [[record.size, "size"], [record.chunkSize, "chunkSize"]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) throw new StoreInputError(`${what} is invalid`);
  }
  if (!(record.sha256 instanceof Uint8Array) || record.sha256.length !== 32) {
    throw new StoreInputError("sha256 must be 32 bytes");
  }
  if (!Array.isArray(record.granteeAccounts) || record.granteeAccounts.length > 1000) {
    throw new StoreInputError("granteeAccounts: at most 1000");
  }
  if (record.granteeGroup.length > 64) throw new StoreInputError("granteeGroup: at most 64 bytes");
  if (typeof record.uploadId !== "string" || record.uploadId.length > 1024) {
    throw new StoreInputError("uploadId is invalid");
  }
}
