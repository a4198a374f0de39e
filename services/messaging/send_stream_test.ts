/** SendStream's own logic, on a fake call: flow control, outcomes, deadlines, token expiry. */
import { EventEmitter } from "node:events";
import type * as grpc from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { assert, assertEquals, captureError, captureRejection } from "../../tests/assert.ts";
import { memoryLogger } from "../platform/log.ts";
import { GuardynError, resourceExhausted } from "../platform/errors.ts";
import type { CallContext } from "../platform/grpc_server.ts";
import { ErrorReason } from "../../proto/gen/guardyn/v1/common.ts";
import type {
  SendMessageRequest,
  SendMessageResponse,
  SendStreamRequest,
  SendStreamResponse,
} from "../../proto/gen/guardyn/v1/messaging.ts";
import {
  SEND_STREAM_IN_FLIGHT,
  type SendStreamDeps,
  SendStreamSlots,
  serveSendStream,
} from "./send_stream.ts";

class FakeCall extends EventEmitter {
  written: SendStreamResponse[] = [];
  paused = false;
  writeResult = true;
  pause() {
    this.paused = true;
    return this;
  }
  resume() {
    this.paused = false;
    return this;
  }
  write(response: SendStreamResponse) {
    this.written.push(response);
    return this.writeResult;
  }
}

function context(): CallContext & { log: ReturnType<typeof memoryLogger> } {
  return {
    auth: { accountId: "alice", deviceId: "phone" } as CallContext["auth"],
    requestId: "req-1",
    log: memoryLogger(),
    metadata: {} as grpc.Metadata,
    signal: new AbortController().signal,
    peer: "test",
    clientAddress: "test",
  };
}

const request = (requestId: number): SendStreamRequest => ({
  requestId,
  send: { clientMessageId: `m${requestId}` } as SendMessageRequest,
});
const response = { serverTimestampMs: 1, envelopes: [], duplicate: false };

function serve(call: FakeCall, deps: Partial<SendStreamDeps>, ctx = context()) {
  return serveSendStream(
    call as unknown as grpc.ServerDuplexStream<SendStreamRequest, SendStreamResponse>,
    ctx,
    {
      sendMessage: () => Promise.resolve(response),
      requestTimeoutMs: 5_000,
      now: () => Date.now(),
      slots: new SendStreamSlots({ perDevice: 2, perInstance: 10 }),
      ...deps,
    },
  );
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("send stream: stops reading at its in-flight bound and answers every request by id", async () => {
  const call = new FakeCall();
  const release: Array<() => void> = [];
  const done = serve(call, {
    sendMessage: () =>
      new Promise<SendMessageResponse>((resolve) => release.push(() => resolve(response))),
  });
  for (let i = 1; i <= SEND_STREAM_IN_FLIGHT; i++) call.emit("data", request(i));
  assert(call.paused, "reading stops at the bound");
  release.splice(0, 10).reverse().forEach((r) => r());
  await tick();
  assert(!call.paused, "reading resumes below the bound");
  assertEquals(call.written.map((w) => w.requestId), [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
  call.emit("end");
  release.splice(0).forEach((r) => r());
  await done; // ends only once every request has been answered
  assertEquals(call.written.length, SEND_STREAM_IN_FLIGHT);
});

Deno.test("send stream: a client that does not read its answers is not read from either", async () => {
  const call = new FakeCall();
  call.writeResult = false;
  const done = serve(call, {});
  call.emit("data", request(1));
  await tick();
  assert(call.paused, "a full write buffer stops reading");
  call.writeResult = true;
  call.emit("drain");
  assert(!call.paused);
  call.emit("end");
  await done;
});

Deno.test("send stream: refusals, internal errors and deadlines become failures, not stream errors", async () => {
  const call = new FakeCall();
  const ctx = context();
  const done = serve(call, {
    requestTimeoutMs: 30,
    sendMessage: (send) => {
      if (send.clientMessageId === "m1") {
        return Promise.reject(resourceExhausted("slow down", "RATE_LIMITED"));
      }
      if (send.clientMessageId === "m2") return Promise.reject(new Error("disk on fire at /x"));
      if (send.clientMessageId === "m3") {
        return Promise.reject(
          new GuardynError(status.UNAVAILABLE, "UNAVAILABLE_BACKEND", "busy", undefined, 1500),
        );
      }
      return new Promise(() => {}); // m4: never answers
    },
  }, ctx);
  for (let i = 1; i <= 4; i++) call.emit("data", request(i));
  call.emit("data", { requestId: 5, send: undefined });
  call.emit("end");
  await done;
  const byId = new Map(call.written.map((w) => [w.requestId, w.result]));
  const failure = (id: number) => {
    const result = byId.get(id);
    assert(result?.$case === "failed", `request ${id} failed`);
    return result.value;
  };
  assertEquals([failure(1).code, failure(1).reason], [
    status.RESOURCE_EXHAUSTED,
    ErrorReason.ERROR_REASON_RATE_LIMITED,
  ]);
  assertEquals([failure(2).code, failure(2).reason], [
    status.INTERNAL,
    ErrorReason.ERROR_REASON_INTERNAL,
  ]);
  assert(!failure(2).message.includes("disk on fire"), "internals stay in the server log");
  assert(ctx.log.lines.some((line) => line.msg === "streamed send failed"));
  assertEquals([failure(3).code, failure(3).retryAfterMs], [status.UNAVAILABLE, 1500]);
  assertEquals(failure(4).code, status.DEADLINE_EXCEEDED);
  assertEquals(failure(5).code, status.INVALID_ARGUMENT);
});

Deno.test("send stream: the stream ends UNAUTHENTICATED when its token expires", async () => {
  const call = new FakeCall();
  const done = serve(call, { tokenExpiryMs: Date.now() + 20 });
  call.emit("data", request(1));
  const error = await captureRejection(done);
  assert(error instanceof GuardynError);
  assertEquals([error.code, error.reason], [status.UNAUTHENTICATED, "TOKEN_EXPIRED"]);
  call.emit("data", request(2)); // after the end: ignored
  await tick();
  assertEquals(call.written.map((w) => w.requestId), [1]);
});

Deno.test("send stream: open streams are bounded per device and per instance, and released", async () => {
  const slots = new SendStreamSlots({ perDevice: 2, perInstance: 3 });
  const calls = [new FakeCall(), new FakeCall()];
  const open = calls.map((call) => serve(call, { slots }));
  const third = await captureError(() => serve(new FakeCall(), { slots }));
  assert(third instanceof GuardynError);
  assertEquals([third.code, third.reason], [status.RESOURCE_EXHAUSTED, "LIMIT_EXCEEDED"]);
  const other = context();
  other.auth = { accountId: "bob", deviceId: "laptop" } as CallContext["auth"];
  const bobs = serve(new FakeCall(), { slots }, other); // a third slot on the instance
  const full = await captureError(() => serve(new FakeCall(), { slots }, { ...other }));
  assert(full instanceof GuardynError);
  assertEquals(full.code, status.UNAVAILABLE);
  assertEquals(slots.size, 3);
  calls[0]!.emit("end");
  await open[0];
  assertEquals(slots.size, 2, "an ended stream gives its slot back");
  serve(new FakeCall(), { slots }); // alice may open one again
  assertEquals(slots.size, 3);
  void bobs;
});
