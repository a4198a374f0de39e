import * as grpc from "@grpc/grpc-js";
import { assert, assertEquals, captureError } from "../../tests/assert.ts";
import { GuardynError } from "../platform/errors.ts";
import {
  EnvelopeType,
  type OutgoingEnvelope,
  type SendMessageRequest,
} from "../../proto/gen/guardyn/v1/messaging.ts";
import { checkSendRequest } from "./send_rules.ts";

const limits = { envelopeMaxBytes: 1024, maxEnvelopes: 3, mailboxTtlSeconds: 3600 };

function envelope(deviceId: string, extra: Partial<OutgoingEnvelope> = {}): OutgoingEnvelope {
  return {
    deviceId,
    registrationId: 7,
    type: EnvelopeType.ENVELOPE_TYPE_RATCHET_MESSAGE,
    content: new Uint8Array([1, 2, 3]),
    ...extra,
  };
}

function request(extra: Partial<SendMessageRequest> = {}): SendMessageRequest {
  return {
    recipientAccountId: "bob",
    clientMessageId: "msg-1.a_b",
    envelopes: [envelope("b1"), envelope("b2")],
    syncEnvelopes: [envelope("a2")],
    ephemeral: false,
    silent: false,
    ttlSeconds: 0,
    urgent: false,
    ...extra,
  };
}

function refusal(extra: Partial<SendMessageRequest>, sender = "alice"): string {
  const error = captureError(() => checkSendRequest(request(extra), sender, limits));
  assert(error instanceof GuardynError, String(error));
  assertEquals([error.code, error.reason], [grpc.status.INVALID_ARGUMENT, "INVALID_ARGUMENT"]);
  return error.message;
}

Deno.test("send rules: a well-formed request passes with its fields", () => {
  const checked = checkSendRequest(request({ silent: true }), "alice", limits);
  assertEquals(checked.recipientAccountId, "bob");
  assertEquals(checked.envelopes.map((e) => e.deviceId), ["b1", "b2"]);
  assertEquals(checked.syncEnvelopes.map((e) => e.deviceId), ["a2"]);
  assertEquals([checked.silent, checked.ephemeral, checked.toSelf], [true, false, false]);
});

Deno.test("send rules: identifiers and the idempotency key are checked", () => {
  assert(refusal({ recipientAccountId: "" }).includes("recipient_account_id"));
  assert(refusal({ recipientAccountId: "a.b" }).includes("recipient_account_id"));
  assert(refusal({ clientMessageId: "" }).includes("client_message_id"));
  assert(refusal({ clientMessageId: "x".repeat(65) }).includes("client_message_id"));
  assert(refusal({ clientMessageId: "has space" }).includes("client_message_id"));
  assert(refusal({ envelopes: [envelope("b/1")] }).includes("envelopes[0].device_id"));
});

Deno.test("send rules: envelope counts are bounded and named in the message", () => {
  assert(refusal({ envelopes: [] }).includes("allowed: 1..3"));
  const four = ["b1", "b2", "b3", "b4"].map((id) => envelope(id));
  assert(refusal({ envelopes: four }).includes("envelopes has 4 entries; allowed: 1..3"));
  const three = ["a2", "a3", "a4"].map((id) => envelope(id));
  assert(refusal({ syncEnvelopes: three }).includes("sync_envelopes has 3 entries; allowed: 0..2"));
});

Deno.test("send rules: one envelope per device, 1:1 types only, bounded content", () => {
  assert(refusal({ envelopes: [envelope("b1"), envelope("b1")] }).includes("appears twice"));
  for (
    const type of [
      EnvelopeType.ENVELOPE_TYPE_UNSPECIFIED,
      EnvelopeType.ENVELOPE_TYPE_MLS_WELCOME,
      EnvelopeType.ENVELOPE_TYPE_MLS_PRIVATE_MESSAGE,
      99 as EnvelopeType,
    ]
  ) {
    assert(refusal({ envelopes: [envelope("b1", { type })] }).includes("PREKEY_MESSAGE"));
  }
  assert(refusal({ envelopes: [envelope("b1", { content: new Uint8Array() })] }).includes("empty"));
  const big = refusal({ envelopes: [envelope("b1", { content: new Uint8Array(1025) })] });
  assert(big.includes("1025 bytes, above the 1024-byte envelope limit"), big);
  checkSendRequest(
    request({ envelopes: [envelope("b1", { content: new Uint8Array(1024) })] }),
    "alice",
    limits,
  );
  assert(refusal({ envelopes: [envelope("b1", { registrationId: -1 })] }).includes("uint32"));
});

Deno.test("send rules: a note to self carries no sync copies", () => {
  assert(refusal({ recipientAccountId: "alice" }).includes("sync_envelopes must be empty"));
  const checked = checkSendRequest(request({ syncEnvelopes: [] }), "bob", limits);
  assert(checked.toSelf);
});

Deno.test("send rules: ttl_seconds defaults to the retention and is bounded by it", () => {
  const plain = checkSendRequest(request(), "alice", limits);
  assertEquals([plain.ttlSeconds, plain.urgent], [3600, false]);
  const offer = checkSendRequest(request({ ttlSeconds: 60, urgent: true }), "alice", limits);
  assertEquals([offer.ttlSeconds, offer.urgent], [60, true]);
  assert(refusal({ ttlSeconds: 3601 }).includes("allowed: 0 (the retention) or 1..3600"));
  // A silent send pushes nothing, so it cannot push urgently either.
  const quiet = checkSendRequest(request({ urgent: true, silent: true }), "alice", limits);
  assertEquals(quiet.urgent, false);
});
