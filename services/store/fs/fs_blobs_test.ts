import { registerBlobSuite } from "../conformance/blob_suite.ts";
import { FsBlobStore } from "./fs_blobs.ts";
import { assertEquals } from "../../../tests/assert.ts";

const dir = await Deno.makeTempDir({ prefix: "guardyn-blobs-" });

registerBlobSuite({
  name: "fs",
  open: () => FsBlobStore.open(`${dir}/media`),
  durableEvery: 1,
});

Deno.test("fs blobs: files are owner-only and a finished upload leaves no temporary file", async () => {
  const store = await FsBlobStore.open(`${dir}/perm`);
  const key = crypto.randomUUID().replaceAll("-", "");
  const upload = await store.resume(key, await store.begin(key));
  await upload.writer.write(new Uint8Array(10));
  await upload.writer.complete();
  assertEquals((await Deno.stat(`${dir}/perm/blobs/${key}`)).mode! & 0o777, 0o600);
  assertEquals((await Deno.stat(`${dir}/perm`)).mode! & 0o777, 0o700);
  assertEquals([...Deno.readDirSync(`${dir}/perm/uploads`)].length, 0);
});

Deno.test("fs blobs: cleanup", async () => {
  await Deno.remove(dir, { recursive: true });
});
