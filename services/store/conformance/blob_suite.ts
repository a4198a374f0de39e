/**
 * The BlobStore conformance suite: every adapter registers it with a factory and passes it
 * unchanged. Blobs are random bytes; keys are fresh per test, so adapters may share a store.
 */
import { assert, assertEquals, captureRejection } from "../../../tests/assert.ts";
import { BlobInputError, type BlobStore } from "../blob_ports.ts";

export interface BlobSuiteOptions {
  name: string;
  open: () => Promise<BlobStore>;
  /** Bytes that must be written before a resume point exists (S3: one multipart part). */
  durableEvery: number;
  sanitize?: boolean;
}

const newKey = () => crypto.randomUUID().replaceAll("-", "");

function random(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += 65_536) crypto.getRandomValues(out.subarray(i, i + 65_536));
  return out;
}

async function readAll(stream: ReadableStream<Uint8Array> | undefined): Promise<Uint8Array> {
  assert(stream !== undefined, "the blob exists");
  const parts: Uint8Array[] = [];
  for await (const part of stream) parts.push(part);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

const same = (a: Uint8Array, b: Uint8Array) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

export function registerBlobSuite(options: BlobSuiteOptions): void {
  const test = (name: string, body: (store: BlobStore) => Promise<void>) =>
    Deno.test({
      name: `${options.name} blobs: ${name}`,
      sanitizeOps: options.sanitize ?? true,
      sanitizeResources: options.sanitize ?? true,
      fn: async () => await body(await options.open()),
    });

  test("a blob written in chunks reads back whole and from an offset", async (store) => {
    const key = newKey();
    const data = random(3 * 1024 * 1024 + 17);
    const { writer, committed } = await store.resume(key, await store.begin(key));
    assertEquals(committed, 0);
    assertEquals(await store.read(key, 0), undefined, "not readable before it is complete");
    for (let i = 0; i < data.length; i += 700_000) {
      await writer.write(data.subarray(i, i + 700_000));
    }
    assertEquals(await writer.complete(), data.length);
    assertEquals(await store.size(key), data.length);
    assert(same(await readAll(await store.read(key, 0)), data), "whole");
    assert(same(await readAll(await store.read(key, 1_000_001)), data.subarray(1_000_001)), "tail");
  });

  test("an upload cut short resumes from its durable bytes", async (store) => {
    const key = newKey();
    const data = random(options.durableEvery * 2 + 123_456);
    const uploadId = await store.begin(key);
    const first = await store.resume(key, uploadId);
    let durable = 0;
    const chunk = 1024 * 1024;
    let sent = 0;
    while (sent < options.durableEvery + chunk) {
      durable = await first.writer.write(data.subarray(sent, sent + chunk));
      sent += chunk;
    }
    assert(durable >= options.durableEvery, `durable ${durable} after ${sent} bytes`);
    // The writer is let go (the client went away); a new one continues from the durable bytes.
    await first.writer.close();
    const again = await store.resume(key, uploadId);
    assertEquals(again.committed, durable);
    for (let i = again.committed; i < data.length; i += chunk) {
      await again.writer.write(data.subarray(i, Math.min(data.length, i + chunk)));
    }
    assertEquals(await again.writer.complete(), data.length);
    assert(same(await readAll(await store.read(key, 0)), data), "the resumed blob is whole");
  });

  test("abort and delete leave nothing; unknown blobs read as absent", async (store) => {
    const aborted = newKey();
    const id = await store.begin(aborted);
    const started = await store.resume(aborted, id);
    await started.writer.write(random(1000));
    await started.writer.close();
    await store.abort(aborted, id);
    assertEquals(await store.size(aborted), undefined);
    const error = await captureRejection(store.resume(aborted, id));
    assert(error instanceof BlobInputError || error instanceof Error, String(error));

    const key = newKey();
    const upload = await store.resume(key, await store.begin(key));
    await upload.writer.write(random(10));
    await upload.writer.complete();
    assertEquals(await store.delete(key), true);
    assertEquals(await store.delete(key), false);
    assertEquals(await store.read(key, 0), undefined);
    assertEquals(await store.size(newKey()), undefined);
  });

  test("an empty blob is a blob", async (store) => {
    const key = newKey();
    const upload = await store.resume(key, await store.begin(key));
    assertEquals(await upload.writer.complete(), 0);
    assertEquals(await store.size(key), 0);
    assertEquals((await readAll(await store.read(key, 0))).length, 0);
  });

  test("keys that are not media ids are refused", async (store) => {
    for (const bad of ["../etc/passwd", "short", "a/b/cccccccccccccccc", "x".repeat(129)]) {
      const error = await captureRejection(store.begin(bad));
      assert(error instanceof BlobInputError, `${bad}: ${error}`);
    }
    await store.ping();
  });
}
