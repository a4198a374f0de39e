/**
 * BlobStore on the local filesystem, under one directory: an upload is written to
 * `uploads/<id>` (owner-only), made durable with fdatasync on every write, and renamed to
 * `blobs/<key>` when complete, so a half-written file is never readable under a key. Writes
 * are synced to disk every SYNC_EVERY bytes and on close and completion: what a write reports
 * survives a crash of the process (the page cache keeps it); a power loss may lose up to the
 * last SYNC_EVERY bytes, which a resume then sends again.
 */
import { join } from "node:path";
import {
  BlobInputError,
  type BlobStore,
  type BlobWriter,
  checkBlobKey,
  checkOffset,
} from "../blob_ports.ts";

const UPLOAD_ID = /^[0-9a-f]{32}$/;
/** Bytes written between two fdatasyncs (one per 1 MiB chunk cost a third of the throughput). */
const SYNC_EVERY = 8 * 1024 * 1024;

const READ_PART_BYTES = 1024 * 1024;

export class FsBlobStore implements BlobStore {
  readonly info: { backend: "fs"; location: string };
  readonly #uploads: string;
  readonly #blobs: string;

  private constructor(readonly dir: string) {
    this.info = { backend: "fs", location: dir };
    this.#uploads = join(dir, "uploads");
    this.#blobs = join(dir, "blobs");
  }

  /** Opens (creating, owner-only) the store's directory. */
  static async open(dir: string): Promise<FsBlobStore> {
    const store = new FsBlobStore(dir);
    for (const sub of [dir, store.#uploads, store.#blobs]) {
      await Deno.mkdir(sub, { recursive: true, mode: 0o700 });
    }
    return store;
  }

  begin(key: string): Promise<string> {
    return Promise.try(async () => {
      checkBlobKey(key);
      const id = Array.from(
        crypto.getRandomValues(new Uint8Array(16)),
        (b) => b.toString(16).padStart(2, "0"),
      ).join("");
      await Deno.writeFile(this.#uploadPath(id), new Uint8Array(0), {
        mode: 0o600,
        createNew: true,
      });
      return id;
    });
  }

  resume(key: string, uploadId: string): Promise<{ writer: BlobWriter; committed: number }> {
    return Promise.try(async () => {
      checkBlobKey(key);
      const path = this.#uploadPath(uploadId);
      const file = await Deno.open(path, { write: true, append: true }).catch((error) => {
        if (error instanceof Deno.errors.NotFound) throw new BlobInputError("no such upload");
        throw error;
      });
      let size = (await file.stat()).size;
      const target = join(this.#blobs, key);
      let closed = false;
      let unsynced = 0;
      // One fdatasync runs beside the writes (waiting for each stalled the stream); the next
      // boundary waits for it, so at most 2 * SYNC_EVERY bytes are ever unsynced.
      let syncing: Promise<void> | undefined;
      let syncFailure: unknown;
      const synced = () => {
        if (syncFailure !== undefined) throw syncFailure;
      };
      const writer: BlobWriter = {
        write: async (chunk) => {
          if (closed) throw new BlobInputError("the upload is complete");
          synced();
          let written = 0;
          while (written < chunk.length) written += await file.write(chunk.subarray(written));
          size += chunk.length;
          unsynced += chunk.length;
          if (unsynced >= SYNC_EVERY) {
            await syncing;
            synced();
            // Caught here, reported by the next write or complete: never an unhandled rejection.
            syncing = file.syncData().catch((error) => void (syncFailure = error));
            unsynced = 0;
          }
          return size;
        },
        complete: async () => {
          if (closed) throw new BlobInputError("the upload is complete");
          closed = true;
          await syncing;
          synced();
          await file.syncData();
          file.close();
          await Deno.rename(path, target);
          return size;
        },
        close: async () => {
          if (!closed) {
            closed = true;
            await syncing;
            await file.syncData().catch(() => {});
            file.close();
          }
        },
      };
      return { writer, committed: size };
    });
  }

  abort(_key: string, uploadId: string): Promise<void> {
    return Promise.try(async () => {
      await Deno.remove(this.#uploadPath(uploadId)).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    });
  }

  read(key: string, offset: number): Promise<ReadableStream<Uint8Array> | undefined> {
    return Promise.try(async () => {
      checkBlobKey(key);
      checkOffset(offset);
      let file: Deno.FsFile;
      try {
        file = await Deno.open(join(this.#blobs, key), { read: true });
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return undefined;
        throw error;
      }
      await file.seek(offset, Deno.SeekMode.Start);
      return readInParts(file);
    });
  }

  size(key: string): Promise<number | undefined> {
    return Promise.try(async () => {
      checkBlobKey(key);
      try {
        return (await Deno.stat(join(this.#blobs, key))).size;
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return undefined;
        throw error;
      }
    });
  }

  delete(key: string): Promise<boolean> {
    return Promise.try(async () => {
      checkBlobKey(key);
      try {
        await Deno.remove(join(this.#blobs, key));
        return true;
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return false;
        throw error;
      }
    });
  }

  async ping(): Promise<void> {
    await Deno.stat(this.#blobs);
  }

  #uploadPath(uploadId: string): string {
    if (!UPLOAD_ID.test(uploadId)) throw new BlobInputError("not an upload id of this store");
    return join(this.#uploads, uploadId);
  }
}

/** Reads in parts of up to 1 MiB (FsFile.readable gives 64 KiB): fewer, larger messages. */
function readInParts(file: Deno.FsFile): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const buffer = new Uint8Array(READ_PART_BYTES);
        let filled = 0;
        while (filled < buffer.length) {
          const n = await file.read(buffer.subarray(filled));
          if (n === null) break;
          filled += n;
        }
        if (filled > 0) controller.enqueue(buffer.subarray(0, filled));
        if (filled < buffer.length) {
          file.close();
          controller.close();
        }
      } catch (error) {
        file.close();
        controller.error(error);
      }
    },
    cancel() {
      file.close();
    },
  }, { highWaterMark: 0 });
}
