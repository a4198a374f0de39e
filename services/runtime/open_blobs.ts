/**
 * Opens the configured blob store and proves it answers before anything starts: an S3 store
 * that does not answer, or refuses the credentials, stops startup with a clear error (never a
 * fallback to the disk). Logs which backend is really used.
 */
import type { BlobConfig } from "../store/blob_config.ts";
import { describeBlobConfig } from "../store/blob_config.ts";
import type { BlobStore } from "../store/blob_ports.ts";
import type { Logger } from "../platform/log.ts";

export async function openBlobStore(config: BlobConfig, log: Logger): Promise<BlobStore> {
  const store: BlobStore = config.backend === "fs"
    ? await (await import("../store/fs/fs_blobs.ts")).FsBlobStore.open(config.dir)
    : new (await import("../store/s3/s3_blobs.ts")).S3BlobStore(config);
  try {
    await store.ping();
  } catch (error) {
    throw new Error(
      `blob store ${store.info.backend} at ${store.info.location} is unusable: ${
        (error as Error).message
      }`,
      { cause: error },
    );
  }
  log.info("blob store opened", describeBlobConfig(config));
  return store;
}
