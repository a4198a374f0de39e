import { join } from "node:path";
import { AttachmentError, encryptAttachment } from "../crypto/mod.ts";
import { assert, assertEquals } from "../tests/assert.ts";
import { saveAttachment } from "./attachments.ts";

const streamOf = (bytes: Uint8Array) => new Blob([bytes as Uint8Array<ArrayBuffer>]).stream();

async function encrypted(plaintext: Uint8Array) {
  const file = encryptAttachment(streamOf(plaintext), { chunkSize: 1024 });
  const ciphertext = new Uint8Array(await new Response(file.ciphertext).arrayBuffer());
  return { ciphertext, key: file.key, digest: await file.digest };
}

async function entries(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

Deno.test("attachments: a verified file appears at its path, private to its owner", async () => {
  const dir = await Deno.makeTempDir({ prefix: "guardyn-attachment-" });
  try {
    const plaintext = crypto.getRandomValues(new Uint8Array(5_000));
    const file = await encrypted(plaintext);
    const path = join(dir, "photo.jpg");
    const size = await saveAttachment(streamOf(file.ciphertext), file, path);
    assertEquals(size, plaintext.length);
    assertEquals([...await Deno.readFile(path)], [...plaintext]);
    assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
    assertEquals(await entries(dir), ["photo.jpg"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Audit finding 13: decryptAttachment releases early chunks before the whole-file digest is
// checked; the SDK's file form never lets them appear anywhere an application would read.
Deno.test("attachments: a digest mismatch leaves nothing behind, not even early chunks", async () => {
  const dir = await Deno.makeTempDir({ prefix: "guardyn-attachment-" });
  try {
    const file = await encrypted(crypto.getRandomValues(new Uint8Array(5_000)));
    const path = join(dir, "photo.jpg");
    const error = await saveAttachment(streamOf(file.ciphertext), {
      key: file.key,
      digest: new Uint8Array(32),
    }, path).then(() => undefined, (e) => e);
    assert(error instanceof AttachmentError && error.code === "digest-mismatch", String(error));
    assertEquals(await entries(dir), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
