/**
 * The conformance suite every Bus adapter passes. An adapter's test file calls
 * `busConformanceSuite(name, factory)`; the factory opens bus instances that share one backend
 * and namespace (instances of one deployment), isolated from every other scope.
 */

import { assert, assertEquals, assertRejects, assertThrows } from "../../../tests/assert.ts";
import type { Bus, EventDelivery } from "../port.ts";
import {
  type BusEvent,
  decodeEvent,
  decodeSignal,
  type DeviceSignal,
  encodeEvent,
  encodeSignal,
  EVENT_KINDS,
  type EventKind,
  MAX_EVENT_BYTES,
  MAX_SIGNAL_PAYLOAD_BYTES,
} from "../subjects.ts";
import type { DeliveryPolicy } from "../delivery.ts";
import { type LogFields, type Logger, memoryLogger } from "../../platform/log.ts";
import { sleep, waitUntil } from "../../../tests/support/wait.ts";

export interface BusScope {
  /** Another bus instance over the same backend and namespace (another process, in production). */
  open(): Promise<Bus>;
  /** Closes every bus opened by this scope and removes its server-side state. */
  dispose(): Promise<void>;
}

export type BusScopeFactory = (log: Logger, delivery: Partial<DeliveryPolicy>) => Promise<BusScope>;

export interface SuiteOptions {
  /** Passed to Deno.test for adapters whose client keeps timers or sockets beyond close(). */
  sanitize?: boolean;
}

/** Short delays so redelivery tests take milliseconds, not minutes. */
export const SUITE_DELIVERY: Partial<DeliveryPolicy> = {
  ackWaitMs: 1_000,
  maxDeliver: 3,
  retryBaseMs: 50,
  retryMaxMs: 200,
};

/** How long to keep listening to prove something did NOT happen. */
const QUIET_MS = 300;
const WAIT_MS = 5_000;

export function busConformanceSuite(
  adapter: string,
  factory: BusScopeFactory,
  options: SuiteOptions = {},
): void {
  const sanitize = options.sanitize ?? true;
  const test = (name: string, fn: (scope: BusScope, log: LogLines) => Promise<void> | void) =>
    Deno.test({
      name: `${adapter} bus: ${name}`,
      sanitizeOps: sanitize,
      sanitizeResources: sanitize,
      fn: async () => {
        const log = memoryLogger();
        const scope = await factory(log, SUITE_DELIVERY);
        try {
          await fn(scope, log);
        } finally {
          await scope.dispose();
        }
      },
    });

  test("a wake-up reaches every subscriber of the device and only it", async (scope) => {
    const [a, b] = [await scope.open(), await scope.open()];
    const account = uniqueId("acct");
    const hits = { a1: 0, a2: 0, a3: 0, other: 0 };
    await a.onWake(account, "phone", () => hits.a1++);
    await b.onWake(account, "phone", () => hits.a2++);
    await b.onWake(account, "phone", () => hits.a3++);
    await a.onWake(account, "laptop", () => hits.other++);
    await b.wake(account, "phone");
    await waitUntil(
      () => hits.a1 === 1 && hits.a2 === 1 && hits.a3 === 1,
      "wake-ups delivered",
      WAIT_MS,
    );
    await sleep(QUIET_MS);
    assertEquals(hits, { a1: 1, a2: 1, a3: 1, other: 0 });
  });

  test("a broadcast reaches every listening instance in order, from now on", async (scope) => {
    const [a, b] = [await scope.open(), await scope.open()];
    const early = new TextEncoder().encode("before anyone listened");
    await a.broadcast("presence", early);
    const got: { a: string[]; b: string[] } = { a: [], b: [] };
    const text = (data: Uint8Array) => new TextDecoder().decode(data);
    const subA = await a.onBroadcast("presence", (data) => got.a.push(text(data)));
    await b.onBroadcast("presence", (data) => got.b.push(text(data)));
    for (let i = 0; i < 5; i++) await b.broadcast("presence", new TextEncoder().encode(`m${i}`));
    const expected = ["m0", "m1", "m2", "m3", "m4"];
    await waitUntil(
      () => got.a.length === 5 && got.b.length === 5,
      "broadcasts delivered",
      WAIT_MS,
    );
    assertEquals(got, { a: expected, b: expected });
    await subA.unsubscribe();
    await a.broadcast("presence", new TextEncoder().encode("after"));
    await waitUntil(() => got.b.length === 6, "the remaining listener gets it", WAIT_MS);
    await sleep(QUIET_MS);
    assertEquals(got.a.length, 5);
    await assertRejects(() => a.broadcast("presence", new Uint8Array(16_385)));
    await assertRejects(() => a.broadcast("nothing" as never, new Uint8Array(1)));
  });

  test("wake-up unsubscribe stops delivery; bad ids are refused", async (scope) => {
    const bus = await scope.open();
    const account = uniqueId("acct");
    let hits = 0;
    const sub = await bus.onWake(account, "d1", () => hits++);
    await bus.wake(account, "d1");
    await waitUntil(() => hits === 1, "first wake-up", WAIT_MS);
    await sub.unsubscribe();
    await bus.wake(account, "d1");
    await sleep(QUIET_MS);
    assertEquals(hits, 1);
    for (const bad of ["a.b", "*", ">", "", "x y"]) {
      await assertRejects(() => bus.wake(bad, "d1"));
      await assertRejects(() => bus.onWake(account, bad, () => {}));
    }
  });

  test("a device signal reaches every subscriber of the device, intact, and only it", async (scope) => {
    const [a, b] = [await scope.open(), await scope.open()];
    const account = uniqueId("acct");
    const got = { a: [] as DeviceSignal[], b: [] as DeviceSignal[], other: [] as DeviceSignal[] };
    await a.onSignal(account, "phone", (signal) => got.a.push(signal));
    await b.onSignal(account, "phone", (signal) => got.b.push(signal));
    await a.onSignal(account, "laptop", (signal) => got.other.push(signal));
    let wakes = 0;
    await a.onWake(account, "phone", () => wakes++);
    const payload = new Uint8Array(MAX_SIGNAL_PAYLOAD_BYTES).map((_, i) => i % 251);
    const sent: DeviceSignal[] = [
      { kind: "stream.opened", streamId: "s-1_A", openedAtMs: 1_700_000_000_123 },
      { kind: "device.revoked", atMs: 1_700_000_000_456 },
      { kind: "payload", data: payload },
    ];
    for (const signal of sent) await b.signal(account, "phone", signal);
    await waitUntil(() => got.a.length === 3 && got.b.length === 3, "signals delivered", WAIT_MS);
    await sleep(QUIET_MS);
    assertEquals(got.a, sent);
    assertEquals(got.b, sent);
    assertEquals(got.other, []);
    assertEquals(wakes, 0, "signals are not wake-ups");
  });

  test("signal unsubscribe stops delivery; malformed signals and ids are refused", async (scope) => {
    const bus = await scope.open();
    const account = uniqueId("acct");
    let hits = 0;
    const sub = await bus.onSignal(account, "d1", () => hits++);
    await bus.signal(account, "d1", { kind: "device.revoked", atMs: 1 });
    await waitUntil(() => hits === 1, "first signal", WAIT_MS);
    await sub.unsubscribe();
    await bus.signal(account, "d1", { kind: "device.revoked", atMs: 2 });
    await sleep(QUIET_MS);
    assertEquals(hits, 1);
    const bad = [
      { kind: "payload", data: new Uint8Array() },
      { kind: "payload", data: new Uint8Array(MAX_SIGNAL_PAYLOAD_BYTES + 1) },
      { kind: "stream.opened", streamId: "a.b", openedAtMs: 1 },
      { kind: "stream.opened", streamId: "ok", openedAtMs: -1 },
      { kind: "device.revoked", atMs: 1.5 },
      { kind: "nope" },
    ];
    for (const signal of bad) {
      await assertRejects(() => bus.signal(account, "d1", signal as DeviceSignal));
    }
    for (const id of ["a.b", "*", ">", ""]) {
      await assertRejects(() => bus.signal(id, "d1", { kind: "device.revoked", atMs: 1 }));
      await assertRejects(() => bus.onSignal(account, id, () => {}));
    }
  });

  test("decodeSignal round-trips every kind and rejects junk", () => {
    const samples: DeviceSignal[] = [
      { kind: "stream.opened", streamId: "x", openedAtMs: 0 },
      { kind: "device.revoked", atMs: 5 },
      { kind: "payload", data: new Uint8Array([1]) },
      { kind: "acked", envelopeIds: ["env-1", "e2"] },
    ];
    for (const signal of samples) assertEquals(decodeSignal(encodeSignal(signal)), signal);
    assertThrows(() => encodeSignal({ kind: "acked", envelopeIds: [] }));
    assertThrows(() => encodeSignal({ kind: "acked", envelopeIds: ["has space"] }));
    const junk = [
      new Uint8Array(),
      new Uint8Array([1]),
      new Uint8Array([9, 1, 2]),
      new Uint8Array([2, 0, 0]),
      new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0x2e]),
      new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff]),
      new Uint8Array(MAX_SIGNAL_PAYLOAD_BYTES + 2).fill(3, 0, 1),
      new Uint8Array([4, 0x0a, 0x41]), // an empty id
    ];
    for (const bytes of junk) assertThrows(() => decodeSignal(bytes));
  });

  test("published events reach a consumer of their kind, and only those", async (scope) => {
    const bus = await scope.open();
    const account = uniqueId("acct");
    const written = [1, 2, 3].map((n) => mailboxWritten(account, n));
    const got: EventDelivery[] = [];
    await bus.consume("writes", ["mailbox.written"], (d) => {
      got.push(d);
      return Promise.resolve();
    });
    for (const event of written) await bus.publish(event);
    await bus.publish({ kind: "identity.changed", accountId: account, atMs: 1 });
    await waitUntil(() => got.length === 3, "three events", WAIT_MS);
    await sleep(QUIET_MS);
    assertEquals(got.length, 3);
    assertEquals(sortByCount(got.map((d) => d.event)), written);
    assert(got.every((d) => d.deliveryCount === 1));
  });

  test("a consumer over several kinds gets each of them", async (scope) => {
    const bus = await scope.open();
    const account = uniqueId("acct");
    const kinds: EventKind[] = ["account.deleted", "device.revoked"];
    const got: BusEvent[] = [];
    await bus.consume("lifecycle", kinds, (d) => {
      got.push(d.event);
      return Promise.resolve();
    });
    await bus.publish({ kind: "device.revoked", accountId: account, deviceId: "d1", atMs: 1 });
    await bus.publish(mailboxWritten(account, 9));
    await bus.publish({ kind: "account.deleted", accountId: account, atMs: 2 });
    await waitUntil(() => got.length === 2, "two lifecycle events", WAIT_MS);
    await sleep(QUIET_MS);
    assertEquals(got.map((e) => e.kind).sort(), ["account.deleted", "device.revoked"]);
  });

  test("consumers with the same name share the work: each event is handled once", async (scope) => {
    const [a, b] = [await scope.open(), await scope.open()];
    const account = uniqueId("acct");
    const handled = new Map<number, number>();
    const handler = (d: EventDelivery) => {
      if (d.event.kind === "mailbox.written") {
        handled.set(d.event.count, (handled.get(d.event.count) ?? 0) + 1);
      }
      return Promise.resolve();
    };
    await a.consume("shared", ["mailbox.written"], handler);
    await b.consume("shared", ["mailbox.written"], handler);
    const total = 30;
    for (let n = 1; n <= total; n++) await (n % 2 ? a : b).publish(mailboxWritten(account, n));
    await waitUntil(() => handled.size === total, "every event handled", WAIT_MS);
    await sleep(QUIET_MS);
    assertEquals(handled.size, total);
    assert([...handled.values()].every((times) => times === 1), "an event was handled twice");
  });

  test("consumers with different names each get every event", async (scope) => {
    const [a, b] = [await scope.open(), await scope.open()];
    const account = uniqueId("acct");
    const seen = { push: [] as number[], audit: [] as number[] };
    for (const [bus, name] of [[a, "push"], [b, "audit"]] as const) {
      await bus.consume(name, ["mailbox.written"], (d) => {
        if (d.event.kind === "mailbox.written") seen[name].push(d.event.count);
        return Promise.resolve();
      });
    }
    for (let n = 1; n <= 10; n++) await a.publish(mailboxWritten(account, n));
    await waitUntil(
      () => seen.push.length === 10 && seen.audit.length === 10,
      "both consumers",
      WAIT_MS,
    );
    await sleep(QUIET_MS);
    const all = Array.from({ length: 10 }, (_, i) => i + 1);
    assertEquals(seen.push.sort(numeric), all);
    assertEquals(seen.audit.sort(numeric), all);
  });

  test("a handler that throws gets the event again with deliveryCount 2", async (scope) => {
    const bus = await scope.open();
    const event = mailboxWritten(uniqueId("acct"), 1);
    const deliveries: EventDelivery[] = [];
    await bus.consume("flaky", ["mailbox.written"], (d) => {
      deliveries.push(d);
      return d.deliveryCount === 1 ? Promise.reject(new Error("transient")) : Promise.resolve();
    });
    await bus.publish(event);
    await waitUntil(() => deliveries.length === 2, "redelivery", WAIT_MS);
    await sleep(QUIET_MS);
    assertEquals(deliveries.map((d) => d.deliveryCount), [1, 2]);
    assertEquals(deliveries[1]!.event, event);
  });

  test("an event that fails maxDeliver times is logged and dropped", async (scope, log) => {
    const bus = await scope.open();
    const account = uniqueId("acct");
    const counts: number[] = [];
    await bus.consume("doomed", ["mailbox.written"], (d) => {
      counts.push(d.deliveryCount);
      return Promise.reject(new Error("permanent"));
    });
    await bus.publish(mailboxWritten(account, 1));
    const dropped = () => log.lines.find((l) => l.msg === "bus event dropped after max deliveries");
    await waitUntil(() => dropped() !== undefined, "drop logged", WAIT_MS);
    await sleep(QUIET_MS);
    assertEquals(counts, [1, 2, 3]);
    assertEquals(dropped()?.consumer, "doomed");
    assertEquals(dropped()?.deliveries, 3);
    assert(!JSON.stringify(log.lines).includes(account), "the log line must not carry ids");
  });

  test("a handler that does not finish within ackWait gets the event again", async (scope) => {
    const bus = await scope.open();
    const release = Promise.withResolvers<void>();
    const counts: number[] = [];
    await bus.consume("stuck", ["mailbox.written"], (d) => {
      counts.push(d.deliveryCount);
      return d.deliveryCount === 1 ? release.promise : Promise.resolve();
    });
    await bus.publish(mailboxWritten(uniqueId("acct"), 1));
    await waitUntil(() => counts.length === 2, "redelivery after ack wait", WAIT_MS);
    release.resolve();
    assertEquals(counts, [1, 2]);
  });

  test("a consumer's own concurrency lets that many handlers wait at once", async (scope) => {
    const bus = await scope.open();
    const release = Promise.withResolvers<void>();
    let running = 0;
    let done = 0;
    await bus.consume("waiting", ["mailbox.written"], async () => {
      running++;
      await release.promise;
      done++;
    }, { concurrency: 40 });
    const account = uniqueId("acct");
    for (let i = 1; i <= 40; i++) await bus.publish(mailboxWritten(account, i));
    // The suite's default policy runs 16 at once; this consumer asked for 40.
    await waitUntil(() => running === 40, "40 handlers waiting together", WAIT_MS);
    release.resolve();
    await waitUntil(() => done === 40, "all finished", WAIT_MS);
  });

  test("unsubscribe stops delivery; the durable consumer keeps later events", async (scope) => {
    const bus = await scope.open();
    const account = uniqueId("acct");
    const first: number[] = [];
    const handler = (into: number[]) => (d: EventDelivery) => {
      if (d.event.kind === "mailbox.written") into.push(d.event.count);
      return Promise.resolve();
    };
    const sub = await bus.consume("pausable", ["mailbox.written"], handler(first));
    await bus.publish(mailboxWritten(account, 1));
    await waitUntil(() => first.length === 1, "first event", WAIT_MS);
    await sub.unsubscribe();
    await bus.publish(mailboxWritten(account, 2));
    await sleep(QUIET_MS);
    assertEquals(first, [1]);
    const second: number[] = [];
    await bus.consume("pausable", ["mailbox.written"], handler(second));
    await waitUntil(() => second.length === 1, "event kept for the durable consumer", WAIT_MS);
    await sleep(QUIET_MS);
    assertEquals(second, [2]);
  });

  test("events published before a consumer exists are delivered to it", async (scope) => {
    const bus = await scope.open();
    const account = uniqueId("acct");
    const events = [1, 2, 3].map((n) => mailboxWritten(account, n));
    for (const event of events) await bus.publish(event);
    const got: BusEvent[] = [];
    await (await scope.open()).consume("latecomer", ["mailbox.written"], (d) => {
      got.push(d.event);
      return Promise.resolve();
    });
    await waitUntil(() => got.length === 3, "earlier events", WAIT_MS);
    assertEquals(sortByCount(got), events);
  });

  test("publishing an equal event twice within the duplicate window stores it once", async (scope) => {
    const bus = await scope.open();
    const event = mailboxWritten(uniqueId("acct"), 7);
    await bus.publish(event);
    await bus.publish({ ...event });
    await bus.publish(mailboxWritten(event.accountId, 8));
    const got: number[] = [];
    await bus.consume("dedupe", ["mailbox.written"], (d) => {
      if (d.event.kind === "mailbox.written") got.push(d.event.count);
      return Promise.resolve();
    });
    await waitUntil(() => got.length === 2, "two distinct events", WAIT_MS);
    await sleep(QUIET_MS);
    assertEquals(got.sort(numeric), [7, 8]);
  });

  test("malformed events, consumer names and kinds are refused", async (scope) => {
    const bus = await scope.open();
    const bad = [
      { kind: "nope", accountId: "a", atMs: 1 },
      { kind: "mailbox.written", accountId: "a", atMs: 1 },
      { kind: "account.deleted", accountId: "", atMs: 1 },
      { kind: "account.deleted", accountId: "a", atMs: -1 },
    ];
    for (const event of bad) await assertRejects(() => bus.publish(event as BusEvent));
    const ok = () => Promise.resolve();
    for (const name of ["", "a.b", "a*", "a b", "x".repeat(65)]) {
      await assertRejects(() => bus.consume(name, ["mailbox.written"], ok));
    }
    await assertRejects(() => bus.consume("valid", [], ok));
    await assertRejects(() => bus.consume("valid", ["nope" as EventKind], ok));
  });

  test("decodeEvent round-trips every kind and rejects junk", () => {
    const samples: BusEvent[] = [
      { kind: "mailbox.written", accountId: "a", deviceId: "d", count: 2, atMs: 5 },
      { kind: "mailbox.acked", accountId: "a", deviceId: "d", count: 1, atMs: 5 },
      { kind: "account.deleted", accountId: "a", atMs: 5 },
      { kind: "account.deleted", accountId: "a", atMs: 5, deviceIds: ["d1", "d2"] },
      { kind: "device.revoked", accountId: "a", deviceId: "d", atMs: 5 },
      { kind: "identity.changed", accountId: "a", atMs: 5 },
    ];
    assertEquals([...new Set(samples.map((e) => e.kind))].sort(), [...EVENT_KINDS].sort());
    for (const event of samples) assertEquals(decodeEvent(encodeEvent(event)), event);
    const text = (s: string) => new TextEncoder().encode(s);
    const junk = [
      text("not json"),
      text("null"),
      text("[]"),
      text("42"),
      text('"mailbox.written"'),
      text('{"kind":"unknown","accountId":"a","atMs":1}'),
      text('{"kind":"mailbox.written","accountId":"a","atMs":1}'),
      text('{"kind":"account.deleted","accountId":7,"atMs":1}'),
      text('{"kind":"account.deleted","accountId":"a","atMs":1.5}'),
      text(`{"kind":"account.deleted","accountId":"${"a".repeat(129)}","atMs":1}`),
      text('{"kind":"account.deleted","accountId":"a","atMs":1,"deviceIds":"d1"}'),
      text('{"kind":"account.deleted","accountId":"a","atMs":1,"deviceIds":[""]}'),
      text(
        `{"kind":"account.deleted","accountId":"a","atMs":1,"deviceIds":${
          JSON.stringify(Array.from({ length: 101 }, (_, i) => `d${i}`))
        }}`,
      ),
      text(
        `{"kind":"account.deleted","accountId":"a","atMs":1,"pad":"${
          "x".repeat(MAX_EVENT_BYTES)
        }"}`,
      ),
      new Uint8Array([0xff, 0xfe, 0x7b, 0x7d]),
    ];
    for (const bytes of junk) assertThrows(() => decodeEvent(bytes));
    // Unknown fields are dropped, so nothing but identifiers travels on.
    const extra = text('{"kind":"account.deleted","accountId":"a","atMs":1,"body":"secret"}');
    assertEquals(decodeEvent(extra), { kind: "account.deleted", accountId: "a", atMs: 1 });
  });

  test("ping answers; a closed bus refuses traffic", async (scope) => {
    const bus = await scope.open();
    await bus.ping();
    assert(bus.info.location.length > 0);
    await bus.close();
    await bus.close();
    await assertRejects(() => bus.ping());
    await assertRejects(() => bus.publish(mailboxWritten("a", 1)));
    await assertRejects(() => bus.wake("a", "d"));
    await assertRejects(() => bus.consume("c", ["mailbox.written"], () => Promise.resolve()));
  });
}

type LogLines = Logger & { lines: LogFields[] };

export function uniqueId(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

export function mailboxWritten(accountId: string, count: number) {
  return {
    kind: "mailbox.written",
    accountId,
    deviceId: "d1",
    count,
    atMs: 1_700_000_000_000 + count,
  } as const;
}

function sortByCount(events: BusEvent[]): BusEvent[] {
  return [...events].sort((x, y) => ("count" in x ? x.count : 0) - ("count" in y ? y.count : 0));
}

function numeric(x: number, y: number): number {
  return x - y;
}
