/**
 * Files through the media service, end to end encrypted: the file is encrypted while it is
 * read (crypto/attachment.ts) into a private temporary file beside the profile, never held in
 * memory; the ciphertext is uploaded in chunks with progress, resumed from the server's durable
 * size after any failure; the key, the attachment digest (the one the server checked) and the
 * sizes travel inside the E2EE message. Receiving downloads, checks and decrypts into a file
 * that appears under its name only once the digest matched (attachments.ts).
 */

import { basename, dirname, join } from "node:path";
import { encryptAttachment } from "../crypto/mod.ts";
import type { Api } from "./api.ts";
import { saveAttachment } from "./attachments.ts";
import { fromBase64, randomId, toBase64 } from "./bytes.ts";
import type { FileRef } from "./content.ts";
import { badInput, GuardynClientError } from "./errors.ts";
import { bearer } from "./transport.ts";

/** Upload chunk: the server's largest (fewer round trips; memory stays at one chunk). */
const UPLOAD_CHUNK = 1024 * 1024;
const UPLOAD_ATTEMPTS = 6;
/** Downloaded ciphertext queued ahead of decryption. */
const DOWNLOAD_QUEUE_BYTES = 4 * 1024 * 1024;

export interface UploadProgress {
  sentBytes: number;
  totalBytes: number;
}

/** Encrypts and uploads `path` for `grantees`; resolves with what the message must carry. */
export async function uploadFile(
  api: Api,
  path: string,
  options: {
    /** Accounts that may download it (the uploader's account always may). */
    grantees: string[];
    /** A group whose members (at download time) may download it. */
    group?: Uint8Array;
    workDir: string;
    onProgress?: (progress: UploadProgress) => void;
  },
): Promise<FileRef> {
  const name = basename(path);
  const info = await Deno.stat(path).catch(() => {
    throw badInput(`cannot read ${path}`);
  });
  if (!info.isFile) throw badInput(`${path} is not a file`);
  const sealedPath = join(options.workDir, `.guardyn-upload-${randomId()}`);
  try {
    // Pass 1: encrypt while reading, into a private temporary file (resumable uploads need
    // the very same ciphertext again).
    const source = await Deno.open(path, { read: true });
    const encrypted = encryptAttachment(source.readable);
    const sink = await Deno.open(sealedPath, { write: true, createNew: true, mode: 0o600 });
    await encrypted.ciphertext.pipeTo(sink.writable);
    const [digest, size] = await Promise.all([encrypted.digest, encrypted.size]);
    const media = api.transport.media;
    const created = await api.authed(media.createUpload.bind(media), {
      ciphertextSize: size,
      chunkSize: UPLOAD_CHUNK,
      ciphertextSha256: digest,
      granteeAccountIds: options.grantees,
      granteeGroupId: options.group ?? new Uint8Array(),
    }, { idempotent: false });
    // Pass 2: upload, resuming from the durable size after a failure.
    let committed = 0;
    for (let attempt = 1;; attempt++) {
      try {
        committed = await sendChunks(
          api,
          created.mediaId,
          sealedPath,
          committed,
          size,
          (sent) => options.onProgress?.({ sentBytes: sent, totalBytes: size }),
        );
        if (committed === size) break;
      } catch (error) {
        if (attempt >= UPLOAD_ATTEMPTS) throw error;
      }
      const status = await api.authed(media.getUploadStatus.bind(media), {
        mediaId: created.mediaId,
      }, { idempotent: true });
      committed = Number(status.committedSize);
    }
    await api.authed(media.completeUpload.bind(media), { mediaId: created.mediaId }, {
      idempotent: true,
    });
    return {
      mediaId: created.mediaId,
      key: toBase64(encrypted.key),
      digest: toBase64(digest),
      size,
      name,
      plainSize: info.size,
    };
  } finally {
    await Deno.remove(sealedPath).catch(() => {});
  }
}

/** One UploadChunks stream from `from`; resolves with the committed size it reports. */
async function sendChunks(
  api: Api,
  mediaId: string,
  sealedPath: string,
  from: number,
  size: number,
  onSent: (sent: number) => void,
): Promise<number> {
  const token = await api.tokens.accessToken();
  const file = await Deno.open(sealedPath, { read: true });
  try {
    await file.seek(from, Deno.SeekMode.Start);
    return await new Promise<number>((resolve, reject) => {
      const call = api.transport.media.uploadChunks(
        bearer(token),
        (error, response) =>
          error
            ? reject(new GuardynClientError("UNAVAILABLE", `upload stopped: ${error.message}`))
            : resolve(Number(response!.committedSize)),
      );
      void (async () => {
        const buffer = new Uint8Array(UPLOAD_CHUNK);
        let offset = from;
        while (offset < size) {
          const length = Math.min(UPLOAD_CHUNK, size - offset);
          let filled = 0;
          while (filled < length) {
            const n = await file.read(buffer.subarray(filled, length));
            if (n === null) throw new Error("the sealed file ended early");
            filled += n;
          }
          const more = call.write({ mediaId, offset, data: buffer.slice(0, length) });
          offset += length;
          onSent(offset);
          if (!more) await new Promise((r) => call.once("drain", r));
        }
        call.end();
      })().catch((error) => {
        call.cancel();
        reject(error);
      });
    });
  } finally {
    file.close();
  }
}

/** Downloads, checks and decrypts a received file to `path` (in place only when whole). */
export async function downloadFile(api: Api, file: FileRef, path: string): Promise<number> {
  await Deno.stat(dirname(path)).catch(() => {
    throw badInput(`no folder ${dirname(path)}`);
  });
  const token = await api.tokens.accessToken();
  const call = api.transport.media.download(
    { mediaId: file.mediaId, offset: 0 },
    bearer(token),
  );
  // Paused while decryption is behind (a few MiB queued), so a slow disk or CPU holds the
  // server back instead of filling memory.
  const ciphertext = new ReadableStream<Uint8Array>({
    start(controller) {
      call.on("data", (part: { data: Uint8Array }) => {
        controller.enqueue(part.data);
        if ((controller.desiredSize ?? 0) <= 0) call.pause();
      });
      call.on("end", () => controller.close());
      call.on("error", (error: Error) => controller.error(error));
    },
    pull() {
      call.resume();
    },
    cancel() {
      call.cancel();
    },
  }, new ByteLengthQueuingStrategy({ highWaterMark: DOWNLOAD_QUEUE_BYTES }));
  return await saveAttachment(ciphertext, {
    key: fromBase64(file.key),
    digest: fromBase64(file.digest),
    size: file.size,
  }, path);
}
