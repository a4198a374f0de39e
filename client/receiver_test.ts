/**
 * The receiver's token-expiry path on a scripted transport: the server ends a stream at token
 * expiry (Closed{TOKEN_EXPIRED}, or an UNAUTHENTICATED status with reason TOKEN_EXPIRED), the
 * receiver renews the token once and reconnects with the new one, and mail keeps flowing.
 */

import { EventEmitter } from "node:events";
import * as grpc from "@grpc/grpc-js";
import { assert, assertEquals } from "../tests/assert.ts";
import {
  ClosedReason,
  type Envelope,
  EnvelopeType,
  type ReceiveRequest,
  type ReceiveResponse,
} from "../proto/gen/guardyn/v1/messaging.ts";
import { Receiver } from "./receiver.ts";
import { TokenKeeper, type TokenPair } from "./tokens.ts";
import type { ReceiveCall, Transport } from "./transport.ts";
import { waitUntil } from "../tests/support/wait.ts";

/** A Receive call whose server side is a script. */
class ScriptedCall extends EventEmitter {
  readonly written: ReceiveRequest[] = [];
  constructor(readonly token: string) {
    super();
  }
  write(request: ReceiveRequest) {
    this.written.push(request);
    const kind = request.kind;
    if (kind?.$case === "ping") {
      queueMicrotask(() =>
        this.emit(
          "data",
          {
            event: { $case: "pong", value: { nonce: kind.value.nonce, serverTimeMs: 0 } },
          } satisfies ReceiveResponse,
        )
      );
    }
    return true;
  }
  end() {
    queueMicrotask(() =>
      this.emit("status", { code: grpc.status.OK, details: "", metadata: new grpc.Metadata() })
    );
  }
  cancel() {
    this.emit("status", {
      code: grpc.status.CANCELLED,
      details: "cancelled",
      metadata: new grpc.Metadata(),
    });
  }
  send(event: ReceiveResponse["event"]) {
    this.emit("data", { event } satisfies ReceiveResponse);
  }
  status(code: grpc.status, reason?: string) {
    const metadata = new grpc.Metadata();
    if (reason) metadata.set("guardyn-error-reason", reason);
    this.emit("status", { code, details: reason ?? "", metadata });
  }
}

function envelope(id: string): Envelope {
  return {
    id,
    seq: 1,
    sender: { accountId: "alice", deviceId: "phone" },
    clientMessageId: id,
    type: EnvelopeType.ENVELOPE_TYPE_RATCHET_MESSAGE,
    content: new Uint8Array([1]),
    serverTimestampMs: 1,
    ephemeral: false,
    groupId: new Uint8Array(0),
  };
}

function harness() {
  const calls: ScriptedCall[] = [];
  const transport = {
    receive: (token: string) => {
      const call = new ScriptedCall(token);
      calls.push(call);
      return call as unknown as ReceiveCall;
    },
  } as unknown as Transport;
  let refreshes = 0;
  const tokens = new TokenKeeper({
    refresh: () => {
      refreshes++;
      const now = Date.now();
      return Promise.resolve({
        accessToken: `access-${refreshes + 1}`,
        accessExpiresAtMs: now + 600_000,
        refreshToken: `refresh-${refreshes + 1}`,
        refreshExpiresAtMs: now + 86_400_000,
      });
    },
    onRotated: () => Promise.resolve(),
  });
  const first: TokenPair = {
    accessToken: "access-1",
    accessExpiresAtMs: Date.now() + 600_000,
    refreshToken: "refresh-1",
    refreshExpiresAtMs: Date.now() + 86_400_000,
    receivedAtMs: Date.now(),
  };
  tokens.set(first);
  const processed: string[] = [];
  const ends: string[] = [];
  const receiver = new Receiver({
    transport,
    tokens,
    process: (batch) => {
      processed.push(...batch.map((e) => e.id));
      return Promise.resolve(batch.map((e) => e.id));
    },
    onState: () => {},
    onDrained: () => {},
    onEnd: (reason) => ends.push(reason),
    onError: () => {},
    backoff: { baseMs: 1, capMs: 5, random: () => 0.5 },
    pingIntervalMs: 60_000,
  });
  return { calls, receiver, processed, ends, refreshes: () => refreshes };
}

const acked = (call: ScriptedCall) =>
  call.written.flatMap((r) => r.kind?.$case === "ack" ? r.kind.value.envelopeIds : []);

Deno.test("receiver: Closed{TOKEN_EXPIRED} renews the token once and reconnects with the new one", async () => {
  const h = harness();
  h.receiver.start();
  await waitUntil(() => h.calls.length === 1, "the first stream");
  const first = h.calls[0]!;
  first.send({ $case: "envelope", value: envelope("e1") });
  first.send({ $case: "queueDrained", value: { backlogCount: 1 } });
  await waitUntil(() => acked(first).includes("e1"), "e1 acknowledged on the first stream");
  first.send({ $case: "closed", value: { reason: ClosedReason.CLOSED_REASON_TOKEN_EXPIRED } });
  first.status(grpc.status.OK);

  await waitUntil(() => h.calls.length === 2, "a second stream");
  const second = h.calls[1]!;
  assertEquals([first.token, second.token], ["access-1", "access-2"]);
  assertEquals(h.refreshes(), 1);
  second.send({ $case: "envelope", value: envelope("e2") });
  second.send({ $case: "queueDrained", value: { backlogCount: 1 } });
  await waitUntil(() => acked(second).includes("e2"), "e2 acknowledged on the second stream");
  assertEquals(h.processed, ["e1", "e2"]);
  assertEquals(h.ends, [], "token expiry is not an end");
  await h.receiver.stop();
  assert(!h.receiver.running);
});

Deno.test("receiver: an UNAUTHENTICATED TOKEN_EXPIRED status also renews and reconnects", async () => {
  const h = harness();
  h.receiver.start();
  await waitUntil(() => h.calls.length === 1, "the first stream");
  h.calls[0]!.status(grpc.status.UNAUTHENTICATED, "TOKEN_EXPIRED");
  await waitUntil(() => h.calls.length === 2, "a second stream");
  assertEquals(h.calls[1]!.token, "access-2");
  assertEquals(h.refreshes(), 1);
  h.calls[1]!.send({ $case: "queueDrained", value: { backlogCount: 0 } });
  await h.receiver.stop();
  assertEquals(h.ends, []);
});

Deno.test("receiver: DEVICE_REVOKED ends the receiver for good, with no reconnect", async () => {
  const h = harness();
  h.receiver.start();
  await waitUntil(() => h.calls.length === 1, "the first stream");
  h.calls[0]!.send({
    $case: "closed",
    value: { reason: ClosedReason.CLOSED_REASON_DEVICE_REVOKED },
  });
  h.calls[0]!.status(grpc.status.OK);
  await waitUntil(() => h.ends.length === 1, "the end");
  assertEquals(h.ends, ["revoked"]);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assertEquals(h.calls.length, 1);
});
