import { assert, assertEquals } from "../../tests/assert.ts";
import { BusUnavailableError } from "../bus/errors.ts";
import { openBus } from "../runtime/open_bus.ts";
import type { Bus } from "../bus/port.ts";
import type { BusEvent } from "../bus/subjects.ts";
import { memoryLogger } from "../platform/log.ts";
import { MailboxEvents } from "./mailbox_events.ts";
import { waitUntil } from "../../tests/support/wait.ts";

const phone = { accountId: "alice", deviceId: "phone" };
const laptop = { accountId: "alice", deviceId: "laptop" };

/** A bus that records published events and can be switched off. */
async function recordingBus(): Promise<{ bus: Bus; events: BusEvent[]; down: { value: boolean } }> {
  const inner = await openBus({ backend: "memory" }, memoryLogger());
  const events: BusEvent[] = [];
  const down = { value: false };
  const bus: Bus = Object.assign(Object.create(inner), {
    publish(event: BusEvent) {
      if (down.value) return Promise.reject(new BusUnavailableError("down", []));
      events.push(structuredClone(event));
      return Promise.resolve();
    },
  });
  return { bus, events, down };
}

Deno.test("mailbox events: counts per device and kind are coalesced into one event", async () => {
  const { bus, events } = await recordingBus();
  let now = 1_000;
  const publisher = new MailboxEvents(bus, memoryLogger(), { flushDelayMs: 5, now: () => now++ });
  publisher.written(phone, 1);
  publisher.written(phone, 2, true); // an incoming call: the coalesced event stays urgent
  publisher.written(laptop, 1);
  publisher.acked(phone, 3);
  publisher.written(phone, 0); // nothing happened: no event
  await waitUntil(() => events.length === 3, "three events");
  const byKey = new Map(events.map((e) => [`${e.kind}/${"deviceId" in e ? e.deviceId : ""}`, e]));
  assertEquals((byKey.get("mailbox.written/phone") as { count: number }).count, 3);
  assertEquals((byKey.get("mailbox.written/phone") as { urgent?: true }).urgent, true);
  assertEquals((byKey.get("mailbox.written/laptop") as { count: number }).count, 1);
  assertEquals("urgent" in byKey.get("mailbox.written/laptop")!, false);
  assertEquals((byKey.get("mailbox.acked/phone") as { count: number }).count, 3);
  assert(JSON.stringify(events).length < 1000, "identifiers and counts only");
  await publisher.stop();
});

Deno.test("mailbox events: kept and retried while the bus is down, then published", async () => {
  const { bus, events, down } = await recordingBus();
  const log = memoryLogger();
  const publisher = new MailboxEvents(bus, log, { flushDelayMs: 5, retryMinMs: 10 });
  down.value = true;
  publisher.written(phone, 1);
  await waitUntil(
    () => log.lines.some((l) => l.msg === "mailbox events not published; retrying"),
    "retry",
  );
  publisher.written(phone, 1);
  assertEquals(events.length, 0);
  down.value = false;
  await waitUntil(() => events.length === 1, "published after recovery");
  assertEquals((events[0] as { count: number }).count, 2);
  await publisher.stop();
});

Deno.test("mailbox events: a full queue drops new devices and counts them", async () => {
  const { bus, events, down } = await recordingBus();
  down.value = true;
  const publisher = new MailboxEvents(bus, memoryLogger(), { flushDelayMs: 1000, maxPending: 2 });
  publisher.written(phone, 1);
  publisher.written(laptop, 1);
  publisher.written({ accountId: "bob", deviceId: "d" }, 1);
  publisher.written(phone, 1); // same device: merged, not dropped
  assertEquals([publisher.pending, publisher.dropped], [2, 1]);
  down.value = false;
  await publisher.stop();
  assertEquals(events.length, 2);
});
