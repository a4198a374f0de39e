import { decryptAttachment, encryptAttachment } from "./attachment.ts";

// Throughput = SIZE / time per iteration (16 MiB => 16.8 MB; 84 ms/iter is 200 MB/s).
const SIZE = 16 * 1024 * 1024;
const PIECE = 64 * 1024;
const source = new Uint8Array(PIECE);
crypto.getRandomValues(source);

function plaintextStream(): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= SIZE) return controller.close();
      sent += PIECE;
      controller.enqueue(source.slice());
    },
  });
}

async function drain(stream: ReadableStream<Uint8Array>): Promise<number> {
  let bytes = 0;
  for await (const part of stream) bytes += part.length;
  return bytes;
}

async function encryptToMemory() {
  const encrypted = encryptAttachment(plaintextStream());
  const parts: Uint8Array[] = [];
  for await (const part of encrypted.ciphertext) parts.push(part);
  return { parts, key: encrypted.key, digest: await encrypted.digest };
}

const sealed = await encryptToMemory();

Deno.bench("encrypt 16 MiB (64 KiB chunks)", { group: "attachment", baseline: true }, async () => {
  const encrypted = encryptAttachment(plaintextStream());
  await drain(encrypted.ciphertext);
  await encrypted.digest;
});

Deno.bench("decrypt 16 MiB (64 KiB chunks)", { group: "attachment" }, async () => {
  let i = 0;
  const ciphertext = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i === sealed.parts.length) return controller.close();
      controller.enqueue(sealed.parts[i++]!);
    },
  });
  const bytes = await drain(decryptAttachment(ciphertext, sealed));
  if (bytes !== SIZE) throw new Error("decryption lost bytes");
});
