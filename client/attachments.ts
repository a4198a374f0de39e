/**
 * Saving a received attachment, the safe way: the plaintext is written to a private temporary
 * file beside the destination (mode 0600) and renamed into place only after the stream ended
 * and the whole-file digest matched. On any failure the temporary file is removed and nothing
 * appears at the destination, so no application ever sees plaintext the digest did not cover.
 */

import { dirname, join } from "node:path";
import { type AttachmentDecryptOptions, decryptAttachment } from "../crypto/mod.ts";
import { randomId } from "./bytes.ts";

/** Decrypts `ciphertext` to `path`; resolves with the plaintext size once it is in place. */
export async function saveAttachment(
  ciphertext: ReadableStream<Uint8Array>,
  options: AttachmentDecryptOptions,
  path: string,
): Promise<number> {
  const temporary = join(dirname(path), `.guardyn-partial-${randomId()}`);
  const file = await Deno.open(temporary, { write: true, createNew: true, mode: 0o600 });
  let size = 0;
  try {
    const counting = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        size += chunk.length;
        controller.enqueue(chunk);
      },
    });
    // pipeTo closes the file when the stream ends, and aborts it on an error.
    await decryptAttachment(ciphertext, options).pipeThrough(counting).pipeTo(file.writable);
    await Deno.rename(temporary, path);
    return size;
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}
