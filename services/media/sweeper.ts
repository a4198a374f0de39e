/**
 * Deletes what has outlived its time: uploads not completed by their deadline (and what they
 * wrote) and completed blobs past their retention, on the blob store and in the store. Shared
 * by every media instance: a record swept twice is gone the second time, harmlessly.
 */
import type { Logger } from "../platform/log.ts";
import type { BlobStore } from "../store/blob_ports.ts";
import type { MediaStore } from "../store/media_ports.ts";

const BATCH = 100;

export async function sweepExpiredMedia(
  deps: { media: MediaStore; blobs: BlobStore; log: Logger; onSwept?: (kind: string) => void },
  nowMs: number,
): Promise<number> {
  let swept = 0;
  for (;;) {
    const due = await deps.media.expired(nowMs, BATCH);
    for (const record of due) {
      if (record.state === "uploading") await deps.blobs.abort(record.mediaId, record.uploadId);
      await deps.blobs.delete(record.mediaId);
      await deps.media.delete(record.mediaId);
      deps.onSwept?.(record.state === "uploading" ? "abandoned_upload" : "expired_blob");
      swept++;
    }
    if (due.length < BATCH) break;
  }
  if (swept > 0) deps.log.info("media swept", { blobs: swept });
  return swept;
}
