import { assert, assertEquals } from "../tests/assert.ts";
import { utf8Encode } from "./bytes.ts";
import {
  type Content,
  decodeContent,
  encodeContent,
  MAX_TEXT_BYTES,
  PAD_BLOCK,
} from "./content.ts";
import { errorCode } from "./test_support.ts";

const samples: Content[] = [
  { kind: "text", id: "m1", body: "héllo 👋", sentAtMs: 1_700_000_000_000 },
  { kind: "receipt", receipt: "read", ids: ["m1", "m2"] },
  { kind: "typing", typing: false },
  { kind: "sent", to: "account-1", id: "m3", body: "copy", sentAtMs: 5 },
  { kind: "read", peer: "account-2", ids: ["m4"] },
  { kind: "hello", deviceName: "Work laptop" },
];

Deno.test("content: every kind round-trips, padded to a multiple of the block", () => {
  for (const content of samples) {
    const bytes = encodeContent({ senderRegistrationId: 42, content });
    assertEquals(bytes.length % PAD_BLOCK, 0);
    assertEquals(decodeContent(bytes), { senderRegistrationId: 42, content });
  }
  // Lengths are hidden within a block.
  const short = encodeContent({
    senderRegistrationId: 1,
    content: { kind: "text", id: "a", body: "hi", sentAtMs: 1 },
  });
  const longer = encodeContent({
    senderRegistrationId: 1,
    content: { kind: "text", id: "a", body: "hi there, how are you", sentAtMs: 1 },
  });
  assertEquals(short.length, longer.length);
});

Deno.test("content: bad input is refused when encoding, with BAD_INPUT", async () => {
  const encode = (content: unknown) => () =>
    encodeContent({ senderRegistrationId: 1, content: content as Content });
  assertEquals(
    await errorCode(encode({ kind: "text", id: "a", body: "", sentAtMs: 1 })),
    "BAD_INPUT",
  );
  assertEquals(
    await errorCode(
      encode({ kind: "text", id: "a", body: "x".repeat(MAX_TEXT_BYTES + 1), sentAtMs: 1 }),
    ),
    "BAD_INPUT",
  );
  assertEquals(
    await errorCode(encode({ kind: "text", id: "has space", body: "x", sentAtMs: 1 })),
    "BAD_INPUT",
  );
  assertEquals(await errorCode(encode({ kind: "receipt", receipt: "read", ids: [] })), "BAD_INPUT");
  assertEquals(await errorCode(encode({ kind: "shout" })), "BAD_INPUT");
});

Deno.test("content: malformed or foreign plaintexts are refused; unknown fields are dropped", async () => {
  const wrap = (json: unknown) => {
    const text = utf8Encode(JSON.stringify(json));
    const padded = new Uint8Array(Math.ceil((text.length + 1) / PAD_BLOCK) * PAD_BLOCK);
    padded.set(text);
    padded[text.length] = 0x80;
    return padded;
  };
  assertEquals(await errorCode(() => decodeContent(new Uint8Array(160))), "CRYPTO_FAILURE");
  assertEquals(
    await errorCode(() => decodeContent(wrap({ v: 2, rid: 1, c: samples[2] }))),
    "CRYPTO_FAILURE",
  );
  assertEquals(
    await errorCode(() => decodeContent(wrap({ v: 1, rid: 0, c: samples[2] }))),
    "CRYPTO_FAILURE",
  );
  assertEquals(
    await errorCode(() =>
      decodeContent(wrap({ v: 1, rid: 1, c: { kind: "typing", typing: "yes" } }))
    ),
    "CRYPTO_FAILURE",
  );
  const extra = decodeContent(
    wrap({ v: 1, rid: 7, c: { kind: "typing", typing: true, evil: "<script>" } }),
  );
  assertEquals(extra.content, { kind: "typing", typing: true });
  assert(!("evil" in extra.content));
});
