import {
  checkConsumerName,
  checkKinds,
  DEFAULT_DELIVERY_POLICY,
  deliveryPolicy,
  isFinalDelivery,
  retryDelayMs,
} from "./delivery.ts";
import type { EventKind } from "./subjects.ts";
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";

Deno.test("retryDelayMs doubles from the base and stops at the maximum", () => {
  const policy = { retryBaseMs: 100, retryMaxMs: 1_000 };
  assertEquals([1, 2, 3, 4, 5, 6].map((n) => retryDelayMs(n, policy)), [
    100,
    200,
    400,
    800,
    1_000,
    1_000,
  ]);
  assertEquals(retryDelayMs(10_000, policy), 1_000);
  assertEquals(retryDelayMs(0, policy), 100);
});

Deno.test("deliveryPolicy fills defaults and names the field it rejects", () => {
  assertEquals(deliveryPolicy(), { ...DEFAULT_DELIVERY_POLICY });
  assertEquals(deliveryPolicy({ maxDeliver: 2 }).maxDeliver, 2);
  assertThrows(() => deliveryPolicy({ maxDeliver: 0 }), /maxDeliver/);
  assertThrows(() => deliveryPolicy({ ackWaitMs: 1.5 }), /ackWaitMs/);
  assertThrows(() => deliveryPolicy({ concurrency: 10_000 }), /concurrency/);
  assertThrows(() => deliveryPolicy({ retryBaseMs: 500, retryMaxMs: 100 }), /retryMaxMs/);
});

Deno.test("isFinalDelivery is true from maxDeliver on", () => {
  assert(!isFinalDelivery(2, { maxDeliver: 3 }));
  assert(isFinalDelivery(3, { maxDeliver: 3 }));
  assert(isFinalDelivery(4, { maxDeliver: 3 }));
});

Deno.test("consumer names are subject-safe tokens", () => {
  assertEquals(checkConsumerName("notification-push_1"), "notification-push_1");
  for (const bad of ["", "a.b", "a*", "a>", "a b", "é", "x".repeat(65)]) {
    assertThrows(() => checkConsumerName(bad), /consumer name/);
  }
});

Deno.test("consumer kinds must be known and are de-duplicated", () => {
  assertEquals(checkKinds(["mailbox.written", "mailbox.written", "device.revoked"]), [
    "mailbox.written",
    "device.revoked",
  ]);
  assertThrows(() => checkKinds([]), /at least one/);
  assertThrows(() => checkKinds(["mailbox.read" as EventKind]), /unknown event kind/);
});
