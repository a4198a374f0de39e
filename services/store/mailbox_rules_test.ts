import { assert, assertEquals, assertNotEquals, assertThrows } from "../../tests/assert.ts";
import { StoreInputError } from "./errors.ts";
import {
  deliveryDigest,
  envelopeIdSeq,
  newEnvelopeId,
  ttlSeconds,
  validateAck,
  validateDelivery,
} from "./mailbox_rules.ts";
import { MAILBOX_DELIVERY_MAX_BYTES, type MailboxDelivery } from "./ports.ts";
import { constantTimeEqual } from "../../crypto/primitives.ts";
import { keyed } from "./conformance/record_keys.ts";

const base: MailboxDelivery = keyed({
  sender: { accountId: "alice", deviceId: "phone" },
  clientMessageId: "m-1",
  serverTimestampMs: 1_000,
  expiresAtMs: 61_000,
  items: [{
    recipient: { accountId: "bob", deviceId: "d1" },
    type: 2,
    content: new Uint8Array([1]),
  }],
});

Deno.test("envelope ids carry their seq and 128 random bits", () => {
  const id = newEnvelopeId(42);
  assertEquals(envelopeIdSeq(id), 42);
  assertNotEquals(newEnvelopeId(42), id);
  assert(id.length <= 64, id);
  for (
    const bad of ["", "42", "0.AAAAAAAAAAAAAAAAAAAAAA", "042.AAAAAAAAAAAAAAAAAAAAAA", "42.short"]
  ) {
    assertEquals(envelopeIdSeq(bad), undefined, bad);
  }
});

Deno.test("the digest covers recipients, types and contents but not timestamps", () => {
  const digest = deliveryDigest(base);
  assert(
    constantTimeEqual(digest, deliveryDigest({ ...base, serverTimestampMs: 5, expiresAtMs: 9 })),
  );
  const variants: MailboxDelivery[] = [
    { ...base, items: [{ ...base.items[0]!, type: 3 }] },
    { ...base, items: [{ ...base.items[0]!, content: new Uint8Array([2]) }] },
    { ...base, items: [{ ...base.items[0]!, recipient: { accountId: "bob", deviceId: "d2" } }] },
    // Length prefixes keep ("ab","c") and ("a","bc") apart.
    { ...base, items: [{ ...base.items[0]!, recipient: { accountId: "bo", deviceId: "bd1" } }] },
  ];
  for (const variant of variants) assert(!constantTimeEqual(digest, deliveryDigest(variant)));
});

Deno.test("delivery limits: total bytes and a valid delivery", () => {
  validateDelivery(base);
  const big = new Uint8Array(200 * 1024);
  const items = Array.from(
    { length: Math.ceil(MAILBOX_DELIVERY_MAX_BYTES / big.byteLength) + 1 },
    (_, i) => ({
      recipient: { accountId: "bob", deviceId: `d${i}` },
      type: 1,
      content: big,
    }),
  );
  assertThrows(() => validateDelivery({ ...base, items }), StoreInputError);
});

Deno.test("ack input: over-long strings are refused, unknown ones are left to the store", () => {
  validateAck({ accountId: "a", deviceId: "d" }, ["nonsense", ""]);
  assertThrows(
    () => validateAck({ accountId: "a", deviceId: "d" }, ["x".repeat(65)]),
    StoreInputError,
  );
});

Deno.test("TTL seconds round up and are never zero", () => {
  assertEquals(ttlSeconds({ serverTimestampMs: 0, expiresAtMs: 1 }), 1);
  assertEquals(ttlSeconds({ serverTimestampMs: 0, expiresAtMs: 1_001 }), 2);
  assertEquals(ttlSeconds({ serverTimestampMs: 500, expiresAtMs: 3_500 }), 3);
});
