import {
  attachmentDigester,
  AttachmentError,
  type AttachmentErrorCode,
  decryptAttachment,
  type DecryptOptions,
  DEFAULT_CHUNK_SIZE,
  digestAttachment,
  encryptAttachment,
  encryptedSize,
  HEADER_BYTES,
  TAG_BYTES,
} from "./attachment.ts";
import { constantTimeEqual } from "./primitives.ts";

const SMALL_CHUNK = 1024;

function randomBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  // getRandomValues is limited to 64 KiB per call.
  for (let at = 0; at < length; at += 65536) {
    crypto.getRandomValues(out.subarray(at, Math.min(length, at + 65536)));
  }
  return out;
}

/** Streams `bytes` in pieces of `piece` bytes (odd sizes exercise re-chunking). */
function streamOf(bytes: Uint8Array, piece = 7777): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= bytes.length) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.slice(at, at + piece));
      at += piece;
    },
  });
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let length = 0;
  for await (const part of stream) {
    parts.push(part);
    length += part.length;
  }
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

async function encrypt(plaintext: Uint8Array, chunkSize?: number, key?: Uint8Array) {
  const encrypted = encryptAttachment(streamOf(plaintext), { chunkSize, key });
  const ciphertext = await collect(encrypted.ciphertext);
  return {
    ciphertext,
    key: encrypted.key,
    digest: await encrypted.digest,
    size: await encrypted.size,
  };
}

async function sha256Digest(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

async function expectRejected(
  ciphertext: Uint8Array,
  options: DecryptOptions,
  code: AttachmentErrorCode,
): Promise<void> {
  try {
    await collect(decryptAttachment(streamOf(ciphertext, 5000), options));
  } catch (error) {
    assert(
      error instanceof AttachmentError && error.code === code,
      `expected AttachmentError ${code}, got ${error}`,
    );
    return;
  }
  throw new Error(`expected AttachmentError ${code}, decryption succeeded`);
}

/** Splits a ciphertext into header and sealed chunks. */
function segments(ciphertext: Uint8Array, chunkSize: number) {
  const header = ciphertext.subarray(0, HEADER_BYTES);
  const chunks: Uint8Array[] = [];
  for (let at = HEADER_BYTES; at < ciphertext.length; at += chunkSize + TAG_BYTES) {
    chunks.push(ciphertext.subarray(at, Math.min(ciphertext.length, at + chunkSize + TAG_BYTES)));
  }
  return { header, chunks };
}

function join(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

const C = DEFAULT_CHUNK_SIZE;
for (const size of [0, 1, C - 1, C, C + 1, 3 * 1024 * 1024 + 12345]) {
  Deno.test(`round trip of ${size} bytes`, async () => {
    const plaintext = randomBytes(size);
    const { ciphertext, key, digest, size: sealedSize } = await encrypt(plaintext);
    assert(key.length === 32, "32-byte key");
    assert(sealedSize === ciphertext.length, "size matches ciphertext");
    assert(sealedSize === encryptedSize(size), "size matches encryptedSize()");
    const decrypted = await collect(
      decryptAttachment(streamOf(ciphertext, 4096), { key, digest, size: sealedSize }),
    );
    assert(constantTimeEqual(decrypted, plaintext), "plaintext round trips");
  });
}

Deno.test("each file gets a fresh key and nonce prefix", async () => {
  const plaintext = randomBytes(100);
  const a = await encrypt(plaintext);
  const b = await encrypt(plaintext);
  assert(!constantTimeEqual(a.key, b.key), "keys differ");
  assert(
    !constantTimeEqual(a.ciphertext.subarray(9, 16), b.ciphertext.subarray(9, 16)),
    "prefixes",
  );
});

Deno.test("tampering is detected with a clear error", async (t) => {
  const plaintext = randomBytes(SMALL_CHUNK * 4 + 100);
  const file = await encrypt(plaintext, SMALL_CHUNK);
  const { header, chunks } = segments(file.ciphertext, SMALL_CHUNK);
  const [c0, c1, c2, c3, c4] = chunks as [
    Uint8Array,
    Uint8Array,
    Uint8Array,
    Uint8Array,
    Uint8Array,
  ];
  const opts = { key: file.key };
  // Digest of the tampered bytes: isolates the per-chunk authentication from the digest check.
  const check = async (bytes: Uint8Array, code: AttachmentErrorCode) =>
    await expectRejected(bytes, { ...opts, digest: await sha256Digest(bytes) }, code);

  await t.step("drop the last chunk", () => check(join(header, c0, c1, c2, c3), "truncated"));
  await t.step("drop a middle chunk", () => check(join(header, c0, c2, c3, c4), "corrupted"));
  await t.step("cut mid-chunk", () => check(file.ciphertext.subarray(0, 2000), "corrupted"));
  await t.step("cut inside the header", () => check(header.subarray(0, 10), "truncated"));
  await t.step("reorder", () => check(join(header, c1, c0, c2, c3, c4), "corrupted"));
  await t.step("duplicate", () => check(join(header, c0, c0, c1, c2, c3, c4), "corrupted"));
  await t.step("append data", () => check(join(file.ciphertext, c4), "corrupted"));

  await t.step("splice a chunk from another file under the same key", async () => {
    const other = await encrypt(randomBytes(plaintext.length), SMALL_CHUNK, file.key);
    const foreign = segments(other.ciphertext, SMALL_CHUNK).chunks[1]!;
    await check(join(header, c0, foreign, c2, c3, c4), "corrupted");
    // Swapping in the other file's header does not help either.
    const otherHeader = segments(other.ciphertext, SMALL_CHUNK).header;
    await check(join(otherHeader, c0, c1, c2, c3, c4), "corrupted");
  });

  await t.step("flip one bit", async () => {
    for (
      const at of [HEADER_BYTES + 5, HEADER_BYTES + SMALL_CHUNK + 30, file.ciphertext.length - 1]
    ) {
      const flipped = file.ciphertext.slice();
      flipped[at]! ^= 0x01;
      await check(flipped, "corrupted");
    }
  });

  await t.step("flip a bit in the magic or version", async () => {
    const badMagic = file.ciphertext.slice();
    badMagic[0]! ^= 0x01;
    await check(badMagic, "bad-header");
    const badVersion = file.ciphertext.slice();
    badVersion[4] = 9;
    await check(badVersion, "unsupported-version");
  });

  await t.step("wrong digest", async () => {
    const digest = file.digest.slice();
    digest[0]! ^= 0x80;
    await expectRejected(file.ciphertext, { ...opts, digest }, "digest-mismatch");
  });

  await t.step("wrong key", async () => {
    await expectRejected(
      file.ciphertext,
      { key: randomBytes(32), digest: file.digest },
      "corrupted",
    );
  });

  await t.step("size differs from the announced one", async () => {
    await expectRejected(
      file.ciphertext,
      { ...opts, digest: file.digest, size: file.size - 1 },
      "corrupted",
    );
    await expectRejected(
      file.ciphertext,
      { ...opts, digest: file.digest, size: file.size + 1 },
      "truncated",
    );
  });

  await t.step("untampered input still decrypts", async () => {
    const out = await collect(
      decryptAttachment(streamOf(file.ciphertext), { ...opts, digest: file.digest }),
    );
    assert(constantTimeEqual(out, plaintext), "round trip");
  });
});

Deno.test("a wrong digest withholds the final chunk", async () => {
  const plaintext = randomBytes(SMALL_CHUNK * 3);
  const file = await encrypt(plaintext, SMALL_CHUNK);
  const digest = new Uint8Array(32);
  const reader = decryptAttachment(streamOf(file.ciphertext), { key: file.key, digest })
    .getReader();
  let released = 0;
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) throw new Error("stream closed despite a wrong digest");
      released += value.length;
    }
  } catch (error) {
    assert(error instanceof AttachmentError && error.code === "digest-mismatch", `${error}`);
  }
  assert(released < plaintext.length, "the last chunk was not released");
});

Deno.test("limits: size cap, chunk size range, key length", async () => {
  const tooBig = encryptAttachment(streamOf(randomBytes(5000)), { maxSize: 4096 });
  try {
    await collect(tooBig.ciphertext);
    throw new Error("expected too-large");
  } catch (error) {
    assert(error instanceof AttachmentError && error.code === "too-large", `${error}`);
  }
  let failed = false;
  await tooBig.digest.catch(() => failed = true);
  assert(failed, "digest rejects when encryption fails");

  const file = await encrypt(randomBytes(10_000), SMALL_CHUNK);
  await expectRejected(
    file.ciphertext,
    { key: file.key, digest: file.digest, maxSize: 4096 },
    "too-large",
  );

  for (const chunkSize of [0, 1023, 4 * 1024 * 1024 + 1, 1.5]) {
    try {
      encryptAttachment(streamOf(new Uint8Array(1)), { chunkSize });
      throw new Error(`chunkSize ${chunkSize} accepted`);
    } catch (error) {
      assert(error instanceof AttachmentError && error.code === "invalid-argument", `${error}`);
    }
  }
  try {
    decryptAttachment(streamOf(file.ciphertext), { key: new Uint8Array(16), digest: file.digest });
    throw new Error("short key accepted");
  } catch (error) {
    assert(error instanceof AttachmentError && error.code === "invalid-argument", `${error}`);
  }
});

Deno.test("streaming keeps memory bounded (backpressure reaches the source)", async () => {
  // 256 chunks of 64 KiB produced on demand; the consumer reads slowly. If anything buffered
  // the whole stream, the producer would run far ahead of the consumer.
  const piece = 64 * 1024;
  const pieces = 256;
  let produced = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (produced === pieces) return controller.close();
      produced++;
      controller.enqueue(new Uint8Array(piece));
    },
  }, { highWaterMark: 1 });
  const encrypted = encryptAttachment(source);
  const decrypted = decryptAttachment(encrypted.ciphertext, {
    key: encrypted.key,
    // Digest only known at the end: verify lead bound on a stream we cancel before its end.
    digest: new Uint8Array(32),
  });
  const reader = decrypted.getReader();
  let consumed = 0;
  let maxLead = 0;
  for (let i = 0; i < 64; i++) {
    const { value } = await reader.read();
    consumed += value!.length / piece;
    await new Promise((resolve) => setTimeout(resolve, 1));
    maxLead = Math.max(maxLead, produced - consumed);
  }
  await reader.cancel();
  // The pipeline holds about a dozen chunks (stream queues plus both in-flight windows);
  // buffering the stream would put the producer ~190 chunks ahead.
  assert(maxLead <= 24, `producer ran ${maxLead} chunks ahead of the consumer`);
});

Deno.test("digest is the documented hash list over header and sealed chunks", async () => {
  const file = await encrypt(randomBytes(SMALL_CHUNK * 2 + 10), SMALL_CHUNK);
  const { header, chunks } = segments(file.ciphertext, SMALL_CHUNK);
  const leaves = await Promise.all(chunks.map(sha256Digest));
  const label = new TextEncoder().encode("guardyn-attachment-digest-v1");
  const expected = await sha256Digest(join(label, header, ...leaves));
  assert(constantTimeEqual(file.digest, expected), "digest = SHA-256(label || header || leaves)");
});

Deno.test("attachment digest: computed from the ciphertext alone, in any pieces", async () => {
  for (const size of [0, 1, 64 * 1024, 64 * 1024 + 5, 300_001]) {
    const data = new Uint8Array(size).map((_, i) => (i * 7) & 0xff);
    const encrypted = encryptAttachment(new Blob([data]).stream());
    const ciphertext = new Uint8Array(await new Response(encrypted.ciphertext).arrayBuffer());
    const expected = await encrypted.digest;
    for (const piece of [1, 17, 65_536, ciphertext.length || 1]) {
      const digester = attachmentDigester();
      for (let i = 0; i < ciphertext.length; i += piece) {
        digester.update(ciphertext.subarray(i, i + piece));
      }
      const got = digester.finish();
      if (got.some((b, i) => b !== expected[i])) {
        throw new Error(`digest differs for size ${size}, pieces of ${piece}`);
      }
      // The WebCrypto form, over the same pieces, agrees.
      const pieces = async function* () {
        for (let i = 0; i < ciphertext.length; i += piece) yield ciphertext.subarray(i, i + piece);
      };
      const fast = await digestAttachment(pieces());
      if (fast.some((b, i) => b !== expected[i])) {
        throw new Error(`digestAttachment differs for size ${size}, pieces of ${piece}`);
      }
    }
  }
});
