/**
 * DeviceStream against an in-memory SQLite mailbox, the in-process bus and a fake call, for the
 * cases the end-to-end tests cannot reach quickly: token expiry, revocation and takeover
 * ordering, ping limits and the hand-over of fresh envelopes.
 */

import { EventEmitter } from "node:events";
import { assert, assertEquals, captureRejection } from "../../tests/assert.ts";
import { openBus } from "../runtime/open_bus.ts";
import { GuardynError } from "../platform/errors.ts";
import { memoryLogger } from "../platform/log.ts";
import { openStore } from "../runtime/open_store.ts";
import type { Store } from "../store/ports.ts";
import {
  ClosedReason,
  type Envelope,
  type ReceiveRequest,
  type ReceiveResponse,
} from "../../proto/gen/guardyn/v1/messaging.ts";
import {
  DeviceStream,
  type DeviceStreamDeps,
  opensAfter,
  type ReceiveCall,
} from "./device_stream.ts";
import { MailboxEvents } from "../kit/mailbox_events.ts";
import { waitUntil } from "../../tests/support/wait.ts";
import { keyed } from "../store/conformance/record_keys.ts";
import { toEnvelope } from "../kit/envelopes.ts";

/** Just enough of a grpc-js duplex call: records writes, lets the test push requests. */
class FakeCall extends EventEmitter {
  readonly written: ReceiveResponse[] = [];
  writableLength = 0;
  write(message: ReceiveResponse): boolean {
    this.written.push(message);
    return true;
  }
  request(request: ReceiveRequest): void {
    this.emit("data", request);
  }
  envelopes(): Envelope[] {
    return this.written.flatMap((m) => m.event?.$case === "envelope" ? [m.event.value] : []);
  }
  closed(): ClosedReason | undefined {
    const last = this.written.findLast((m) => m.event?.$case === "closed");
    return last?.event?.$case === "closed" ? last.event.value.reason : undefined;
  }
  drained(): boolean {
    return this.written.some((m) => m.event?.$case === "queueDrained");
  }
}

const owner = { accountId: "bob", deviceId: "phone" };

async function withStream(
  fn: (
    h: { store: Store; deps: DeviceStreamDeps; open: (opts?: Partial<Opts>) => Opened },
  ) => Promise<void>,
) {
  const store = await openStore({ backend: "sqlite", path: ":memory:" }, memoryLogger());
  const log = memoryLogger();
  const bus = await openBus({ backend: "memory" }, log);
  const deps: DeviceStreamDeps = {
    mailbox: store.mailbox,
    bus,
    events: new MailboxEvents(bus, log),
    log,
    deviceActive: () => Promise.resolve(true),
    pollIntervalMs: 60_000,
    now: Date.now,
  };
  const controllers: AbortController[] = [];
  try {
    await fn({
      store,
      deps,
      open: (opts = {}) => {
        const call = new FakeCall();
        const controller = new AbortController();
        controllers.push(controller);
        const stream = new DeviceStream(call as unknown as ReceiveCall, deps, {
          owner,
          streamId: opts.streamId ?? crypto.randomUUID(),
          openedAtMs: opts.openedAtMs ?? Date.now(),
          ...(opts.tokenExpiresAtMs !== undefined
            ? { tokenExpiresAtMs: opts.tokenExpiresAtMs }
            : {}),
        });
        return { call, stream, done: stream.run(controller.signal) };
      },
    });
  } finally {
    for (const controller of controllers) controller.abort(new Error("test over"));
    await bus.close();
    await store.close();
  }
}

interface Opts {
  streamId: string;
  openedAtMs: number;
  tokenExpiresAtMs: number;
}
interface Opened {
  call: FakeCall;
  stream: DeviceStream;
  done: Promise<void>;
}

function deliver(store: Store, n: number) {
  const now = Date.now();
  return store.mailbox.deliver(keyed({
    sender: { accountId: "alice", deviceId: "laptop" },
    clientMessageId: `m${n}-${crypto.randomUUID()}`,
    serverTimestampMs: now,
    expiresAtMs: now + 60_000,
    items: [{ recipient: owner, type: 2, content: new Uint8Array([n]) }],
  }));
}

Deno.test("device stream: the stream ends with TOKEN_EXPIRED when its token expires", async () => {
  await withStream(async ({ open }) => {
    const { call, done } = open({ tokenExpiresAtMs: Date.now() + 50 });
    await done;
    assertEquals(call.closed(), ClosedReason.CLOSED_REASON_TOKEN_EXPIRED);
  });
});

Deno.test("device stream: a revocation closes streams opened before it, not after", async () => {
  await withStream(async ({ deps, open }) => {
    const revoke = (atMs: number) =>
      deps.bus.signal(owner.accountId, owner.deviceId, { kind: "device.revoked", atMs });
    // The reinstalled device's new stream opened after the revocation: it stays.
    const fresh = open({ openedAtMs: 3_000 });
    await waitUntil(() => fresh.call.drained(), "fresh stream drained");
    await revoke(2_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert(!fresh.stream.closed, "a stream opened after the revocation stays open");
    fresh.stream.close(ClosedReason.CLOSED_REASON_REPLACED);
    await fresh.done;
    // The old install's stream opened before it: it ends.
    const old = open({ openedAtMs: 1_000 });
    await waitUntil(() => old.call.drained(), "old stream drained");
    await revoke(2_000);
    await old.done;
    assertEquals(old.call.closed(), ClosedReason.CLOSED_REASON_DEVICE_REVOKED);
  });
});

Deno.test("device stream: of two streams on different instances, the later one wins", async () => {
  assert(opensAfter({ openedAtMs: 2, streamId: "a" }, { openedAtMs: 1, streamId: "z" }));
  assert(opensAfter({ openedAtMs: 1, streamId: "b" }, { openedAtMs: 1, streamId: "a" }));
  assert(!opensAfter({ openedAtMs: 1, streamId: "a" }, { openedAtMs: 1, streamId: "b" }));
  await withStream(async ({ open }) => {
    // Each announces itself on the bus; only the earlier one hears a later one and closes.
    const first = open({ openedAtMs: 1_000, streamId: "s-1" });
    await waitUntil(() => first.call.drained(), "first drained");
    const second = open({ openedAtMs: 2_000, streamId: "s-2" });
    await first.done;
    assertEquals(first.call.closed(), ClosedReason.CLOSED_REASON_REPLACED);
    await waitUntil(() => second.call.drained(), "second drained");
    assert(!second.stream.closed);
  });
});

Deno.test("device stream: fresh envelopes are handed over only in seq order", async () => {
  await withStream(async ({ store, open }) => {
    const { call, stream } = open();
    await waitUntil(() => call.drained(), "drained");
    const [one, two, three] = [
      await deliver(store, 1),
      await deliver(store, 2),
      await deliver(store, 3),
    ]
      .map((result) => toEnvelope(result.envelopes[0]!));
    assert(!stream.offer(two!), "a gap: not taken");
    assert(stream.offer(one!));
    assert(stream.offer(two!));
    assert(!stream.offer(two!), "already sent");
    stream.wake(); // the mailbox read brings the third
    await waitUntil(() => call.envelopes().length === 3, "three envelopes");
    assertEquals(call.envelopes().map((e) => e.seq), [one!.seq, two!.seq, three!.seq]);
  });
});

Deno.test("device stream: pings beyond the burst end the stream with RATE_LIMITED", async () => {
  await withStream(async ({ open }) => {
    const { call, done } = open();
    await waitUntil(() => call.drained(), "drained");
    for (let i = 0; i < 12; i++) call.request({ kind: { $case: "ping", value: { nonce: i } } });
    const error = await captureRejection(done);
    assert(error instanceof GuardynError, String(error));
    assertEquals(error.reason, "RATE_LIMITED");
    assertEquals(call.written.filter((m) => m.event?.$case === "pong").length, 10);
  });
});

Deno.test("device stream: a pong waits for the acks sent before its ping", async () => {
  await withStream(async ({ store, open }) => {
    await deliver(store, 1);
    const { call } = open();
    await waitUntil(() => call.envelopes().length === 1, "the envelope");
    call.request({ kind: { $case: "ack", value: { envelopeIds: [call.envelopes()[0]!.id] } } });
    call.request({ kind: { $case: "ping", value: { nonce: 7 } } });
    await waitUntil(() => call.written.some((m) => m.event?.$case === "pong"), "pong");
    assertEquals(await store.mailbox.count(owner, Date.now()), 0, "the ack was applied first");
  });
});
