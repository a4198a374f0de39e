/**
 * MediaService: encrypted blobs the server cannot read. The client encrypts (crypto/
 * attachment.ts), declares size, chunk size and the attachment digest, uploads chunks
 * (resumable from the durable size), and completes: the server computes the digest of the
 * stored ciphertext and discards it on a mismatch. Only the uploader's account and the grantees (accounts, or
 * the members of a group at download time) may download; to anyone else a blob does not
 * exist. Also GetTurnCredentials for calls.
 */
import { constantTimeEqual } from "../../crypto/primitives.ts";
import { AttachmentError, digestAttachment } from "../../crypto/attachment.ts";
import {
  failedPrecondition,
  invalidArgument,
  notFound,
  resourceExhausted,
} from "../platform/errors.ts";
import { type Handlers, requireAuth } from "../platform/grpc_server.ts";
import type { Logger } from "../platform/log.ts";
import type { RateLimiter } from "../platform/rate_limit.ts";
import type { BlobStore } from "../store/blob_ports.ts";
import type { GroupStore } from "../store/group_ports.ts";
import type { MediaRecord, MediaStore } from "../store/media_ports.ts";
import type { DeviceRef } from "../store/ports.ts";
import { MediaServiceService, MediaState } from "../../proto/gen/guardyn/v1/media.ts";
import { messagesOf } from "./message_queue.ts";
import type { MediaSettings } from "./settings.ts";
import { turnCredential } from "./turn_credentials.ts";
import { randomBase64Url } from "../platform/base64url.ts";

export const CHUNK_MIN = 64 * 1024;
export const CHUNK_MAX = 1024 * 1024;
/** Download bytes queued for the connection before the handler waits for it. */
const DOWNLOAD_QUEUE_BYTES = 2 * CHUNK_MAX;
const GRANTEES_MAX = 1000;
const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export interface MediaDeps {
  media: MediaStore;
  groups: GroupStore;
  blobs: BlobStore;
  settings: MediaSettings;
  log: Logger;
  now: () => number;
  limiters: { uploads: RateLimiter; turn: RateLimiter };
  /** Completed uploads' bytes, and blobs swept (metrics). */
  onStored?: (bytes: number) => void;
}

export function mediaHandlers(deps: MediaDeps): Handlers<typeof MediaServiceService> {
  const { media, blobs, settings } = deps;

  /** The caller's own upload, or NOT_FOUND (whoever else asks learns nothing). */
  const ownUpload = async (mediaId: string, caller: DeviceRef): Promise<MediaRecord> => {
    const record = ID_PATTERN.test(mediaId) && mediaId.length >= 16
      ? await media.get(mediaId)
      : undefined;
    if (!record || record.owner.accountId !== caller.accountId) throw notFound("no such media");
    return record;
  };

  /** Bytes of an upload that are durable (the whole size once its blob is in place). */
  const committedOf = async (record: MediaRecord): Promise<number> => {
    const size = await blobs.size(record.mediaId);
    if (size !== undefined) return size;
    const { writer, committed } = await blobs.resume(record.mediaId, record.uploadId);
    await writer.close();
    return committed;
  };

  return {
    async createUpload(request, ctx) {
      const caller = deviceOf(requireAuth(ctx));
      const size = Number(request.ciphertextSize);
      if (!Number.isSafeInteger(size) || size < 1 || size > settings.maxBlobBytes) {
        throw invalidArgument(`ciphertext_size must be 1..${settings.maxBlobBytes} bytes`);
      }
      if (request.chunkSize < CHUNK_MIN || request.chunkSize > CHUNK_MAX) {
        throw invalidArgument(`chunk_size must be ${CHUNK_MIN}..${CHUNK_MAX} bytes`);
      }
      if (request.ciphertextSha256.length !== 32) {
        throw invalidArgument("ciphertext_sha256 must be 32 bytes");
      }
      if (request.granteeAccountIds.length > GRANTEES_MAX) {
        throw invalidArgument(`grantee_account_ids: at most ${GRANTEES_MAX}`);
      }
      if (!request.granteeAccountIds.every((id) => ID_PATTERN.test(id))) {
        throw invalidArgument("grantee_account_ids must be account ids");
      }
      if (request.granteeGroupId.length > 64) {
        throw invalidArgument("grantee_group_id must be 0..64 bytes");
      }
      if (request.granteeGroupId.length > 0) {
        const group = await deps.groups.get(request.granteeGroupId);
        if (!group?.members.some((m) => sameDevice(m.device, caller))) {
          throw notFound("no such group");
        }
      }
      deps.limiters.uploads.take(key(caller), "uploads");
      const mediaId = randomBase64Url();
      const uploadId = await blobs.begin(mediaId);
      const now = deps.now();
      const record: MediaRecord = {
        mediaId,
        owner: caller,
        size,
        chunkSize: request.chunkSize,
        sha256: request.ciphertextSha256,
        granteeAccounts: [...new Set(request.granteeAccountIds)],
        granteeGroup: request.granteeGroupId,
        uploadId,
        state: "uploading",
        createdAtMs: now,
        expiresAtMs: now + settings.uploadDeadlineSeconds * 1000,
      };
      if (await media.create(record, settings.quotaBytes) === "quota") {
        await blobs.abort(mediaId, uploadId);
        throw resourceExhausted(
          `storing ${size} more bytes would pass this account's quota of ${settings.quotaBytes}`,
        );
      }
      return {
        mediaId,
        uploadExpiresAtMs: record.expiresAtMs,
        maxCiphertextSize: settings.maxBlobBytes,
        maxChunkSize: CHUNK_MAX,
      };
    },

    async uploadChunks(call, ctx) {
      const caller = deviceOf(requireAuth(ctx));
      let record: MediaRecord | undefined;
      let writer: Awaited<ReturnType<BlobStore["resume"]>>["writer"] | undefined;
      let position = 0;
      let durable = 0;
      try {
        for await (const chunk of messagesOf(call)) {
          if (!record) {
            record = await ownUpload(chunk.mediaId, caller);
            if (!sameDevice(record.owner, caller)) throw notFound("no such media");
            if (record.state !== "uploading" || await blobs.size(record.mediaId) !== undefined) {
              throw failedPrecondition(
                "the upload has all its bytes: complete it",
                "INVALID_ARGUMENT",
              );
            }
            const resumed = await blobs.resume(record.mediaId, record.uploadId);
            writer = resumed.writer;
            position = durable = resumed.committed;
          } else if (chunk.mediaId !== record.mediaId) {
            throw invalidArgument("every message of the stream must name the same media_id");
          }
          if (Number(chunk.offset) !== position) {
            throw failedPrecondition(
              `offset ${chunk.offset} is not the committed size ${position}: resume there`,
              "OFFSET_MISMATCH",
            );
          }
          const remaining = record.size - position;
          const expected = Math.min(record.chunkSize, remaining);
          if (chunk.data.length !== expected) {
            throw invalidArgument(
              `a chunk at offset ${position} must have ${expected} bytes (chunk_size ` +
                `${record.chunkSize}, declared size ${record.size}), got ${chunk.data.length}`,
            );
          }
          durable = await writer!.write(chunk.data);
          position += chunk.data.length;
        }
        if (!record) throw invalidArgument("the stream named no upload");
        // Every byte is here: make them durable and the blob whole (checked on completion).
        if (position === record.size) durable = await writer!.complete();
        else await writer!.close();
        writer = undefined;
        return { committedSize: durable };
      } finally {
        await writer?.close();
      }
    },

    async getUploadStatus(request, ctx) {
      const caller = deviceOf(requireAuth(ctx));
      const record = await ownUpload(request.mediaId, caller);
      const complete = record.state === "complete";
      return {
        state: complete ? MediaState.MEDIA_STATE_COMPLETE : MediaState.MEDIA_STATE_UPLOADING,
        committedSize: complete ? record.size : await committedOf(record),
        ciphertextSize: record.size,
        expiresAtMs: record.expiresAtMs,
      };
    },

    async completeUpload(request, ctx) {
      const caller = deviceOf(requireAuth(ctx));
      const record = await ownUpload(request.mediaId, caller);
      if (record.state === "complete") {
        return { ciphertextSize: record.size, expiresAtMs: record.expiresAtMs };
      }
      const stored = await blobs.size(record.mediaId);
      if (stored !== record.size) {
        throw failedPrecondition(
          `${await committedOf(record)} of ${record.size} bytes are stored`,
          "UPLOAD_INCOMPLETE",
        );
      }
      // The attachment digest (crypto/attachment.ts): the one the E2EE message carries too.
      let digest: Uint8Array | undefined;
      try {
        digest = await digestAttachment((await blobs.read(record.mediaId, 0))!);
      } catch (error) {
        if (!(error instanceof AttachmentError)) throw error;
      }
      if (!digest || !constantTimeEqual(digest, record.sha256)) {
        await blobs.delete(record.mediaId);
        await media.delete(record.mediaId);
        throw failedPrecondition(
          "the stored ciphertext's attachment digest differs from the declared one (or it is " +
            "not a Guardyn attachment): the upload was discarded",
          "DIGEST_MISMATCH",
        );
      }
      const expiresAtMs = deps.now() + settings.retentionSeconds * 1000;
      await media.complete(record.mediaId, expiresAtMs);
      deps.onStored?.(record.size);
      return { ciphertextSize: record.size, expiresAtMs };
    },

    async download(request, call, ctx) {
      const caller = deviceOf(requireAuth(ctx));
      const record = ID_PATTERN.test(request.mediaId) && request.mediaId.length >= 16
        ? await media.get(request.mediaId)
        : undefined;
      if (
        !record || record.state !== "complete" || record.expiresAtMs <= deps.now() ||
        !await mayDownload(deps.groups, record, caller)
      ) {
        throw notFound("no such media");
      }
      const offset = Number(request.offset);
      if (!Number.isSafeInteger(offset) || offset < 0 || offset > record.size) {
        throw invalidArgument(`offset must be 0..${record.size}`);
      }
      const stream = await blobs.read(record.mediaId, offset);
      if (!stream) throw notFound("no such media");
      let at = offset;
      for await (const part of rechunk(stream, CHUNK_MAX)) {
        call.write({ offset: at, data: part, ciphertextSize: record.size });
        at += part.length;
        // Two messages queued keep the connection busy while the next part is read (waiting
        // for each 1 MiB message to leave halved the rate); then wait until it takes them.
        if (call.writableLength >= DOWNLOAD_QUEUE_BYTES) {
          await new Promise((resolve) => call.once("drain", resolve));
        }
      }
    },

    async deleteMedia(request, ctx) {
      const caller = deviceOf(requireAuth(ctx));
      const record = await ownUpload(request.mediaId, caller);
      await media.delete(record.mediaId);
      if (record.state === "uploading") await blobs.abort(record.mediaId, record.uploadId);
      await blobs.delete(record.mediaId);
      return {};
    },

    getTurnCredentials(_request, ctx) {
      const caller = deviceOf(requireAuth(ctx));
      if (!settings.turn) {
        throw failedPrecondition(
          "calls are not configured on this server (TURN_SHARED_SECRET)",
          "INVALID_ARGUMENT",
        );
      }
      deps.limiters.turn.take(key(caller), "TURN credentials");
      return Promise.resolve(turnCredential(settings.turn, deps.now()));
    },
  };
}

/** The uploader's account, a granted account, or a member of the granted group today. */
async function mayDownload(groups: GroupStore, record: MediaRecord, caller: DeviceRef) {
  if (caller.accountId === record.owner.accountId) return true;
  if (record.granteeAccounts.includes(caller.accountId)) return true;
  if (record.granteeGroup.length === 0) return false;
  const group = await groups.get(record.granteeGroup);
  return group?.members.some((m) => m.device.accountId === caller.accountId) ?? false;
}

/** A byte stream as pieces of at most `max` bytes. */
async function* rechunk(stream: ReadableStream<Uint8Array>, max: number) {
  for await (const part of stream) {
    for (let i = 0; i < part.length; i += max) yield part.subarray(i, i + max);
  }
}

function deviceOf(auth: { accountId: string; deviceId: string }): DeviceRef {
  return { accountId: auth.accountId, deviceId: auth.deviceId };
}

function sameDevice(a: DeviceRef, b: DeviceRef): boolean {
  return a.accountId === b.accountId && a.deviceId === b.deviceId;
}

function key(device: DeviceRef): string {
  return `${device.accountId}/${device.deviceId}`;
}
