import { sleep, waitUntil } from "../../tests/support/wait.ts";
import { busConformanceSuite, mailboxWritten } from "./conformance/bus_suite.ts";
import { createMemoryBus } from "./memory.ts";
import { EventLog } from "./memory_log.ts";
import { assert, assertEquals } from "../../tests/assert.ts";
import { memoryLogger } from "../platform/log.ts";
import type { BusEvent } from "./subjects.ts";

// In one process every "instance" is the same in-process bus.
busConformanceSuite("memory", (log, delivery) => {
  const bus = createMemoryBus(log, { delivery });
  return Promise.resolve({ open: () => Promise.resolve(bus), dispose: () => bus.close() });
});

const event = (n: number): BusEvent => mailboxWritten("acct", n);

Deno.test("memory event log: full log discards the oldest event", () => {
  const log = new EventLog({ maxEvents: 3, maxAgeMs: 60_000, duplicateWindowMs: 1_000 });
  for (let n = 1; n <= 5; n++) assert(log.append(event(n), `k${n}`));
  assertEquals(log.size, 3);
  assertEquals(log.firstSeq, 3);
  assertEquals(log.get(2), undefined);
  assertEquals(log.get(5)?.event, event(5));
});

Deno.test("memory event log: events older than maxAge are discarded", () => {
  let now = 0;
  const log = new EventLog({ maxEvents: 10, maxAgeMs: 100, duplicateWindowMs: 10 }, () => now);
  log.append(event(1), "a");
  now = 50;
  log.append(event(2), "b");
  now = 120;
  log.trim();
  assertEquals(log.size, 1);
  assertEquals(log.firstSeq, 2);
});

Deno.test("memory event log: duplicates are refused only within the window", () => {
  let now = 0;
  const log = new EventLog({ maxEvents: 10, maxAgeMs: 1_000, duplicateWindowMs: 100 }, () => now);
  assert(log.append(event(1), "same"));
  now = 99;
  assert(!log.append(event(1), "same"));
  now = 100;
  assert(log.append(event(1), "same"));
  assertEquals(log.size, 2);
});

Deno.test("memory bus: a consumer behind the retention limit skips lost events and says so", async () => {
  const log = memoryLogger();
  const bus = createMemoryBus(log, { log: { maxEvents: 3 } });
  const got: number[] = [];
  const sub = await bus.consume("slow", ["mailbox.written"], (d) => {
    if (d.event.kind === "mailbox.written") got.push(d.event.count);
    return Promise.resolve();
  });
  await sub.unsubscribe();
  for (let n = 1; n <= 5; n++) await bus.publish(event(n));
  await bus.consume("slow", ["mailbox.written"], (d) => {
    if (d.event.kind === "mailbox.written") got.push(d.event.count);
    return Promise.resolve();
  });
  await waitUntil(() => got.length === 3, "retained events");
  assertEquals(got, [3, 4, 5]);
  const skipped = log.lines.find((l) => String(l.msg).startsWith("bus consumer skipped"));
  assertEquals(skipped?.skipped, 2);
  await bus.close();
});

Deno.test("memory bus: unacknowledged events beyond maxAckPending wait", async () => {
  const bus = createMemoryBus(memoryLogger(), { delivery: { maxAckPending: 2, concurrency: 10 } });
  const release = Promise.withResolvers<void>();
  let started = 0;
  await bus.consume("narrow", ["mailbox.written"], async () => {
    started++;
    await release.promise;
  });
  for (let n = 1; n <= 5; n++) await bus.publish(event(n));
  await sleep(50);
  assertEquals(started, 2);
  release.resolve();
  await waitUntil(() => started === 5, "the rest after acks");
  await bus.close();
});

Deno.test("memory bus: a wake-up handler that throws does not stop the others", async () => {
  const log = memoryLogger();
  const bus = createMemoryBus(log);
  let reached = 0;
  await bus.onWake("a", "d", () => {
    throw new Error("boom");
  });
  await bus.onWake("a", "d", () => reached++);
  await bus.wake("a", "d");
  await waitUntil(() => reached === 1, "second handler");
  assert(log.lines.some((l) => l.msg === "wake-up handler failed"));
  await bus.close();
});
