import { assertEquals } from "../../tests/assert.ts";
import { EventLog } from "./memory_log.ts";
import type { BusEvent } from "./subjects.ts";

const event = (n: number): BusEvent => ({ kind: "account.deleted", accountId: `a${n}`, atMs: n });

Deno.test("memory event log: keeps the newest maxEvents, addressable by sequence, across compactions", () => {
  const log = new EventLog({ maxEvents: 100, maxAgeMs: 1e12, duplicateWindowMs: 0 }, () => 0);
  for (let i = 1; i <= 5000; i++) log.append(event(i), `k${i}`);
  assertEquals(log.size, 100);
  assertEquals(log.firstSeq, 4901);
  assertEquals(log.nextSeq, 5001);
  assertEquals(log.get(4900), undefined);
  assertEquals((log.get(4901)?.event as { accountId: string }).accountId, "a4901");
  assertEquals((log.get(5000)?.event as { accountId: string }).accountId, "a5000");
  assertEquals(log.get(5001), undefined);
});

Deno.test("memory event log: old events age out and duplicates within the window are dropped", () => {
  let now = 0;
  const log = new EventLog({ maxEvents: 1000, maxAgeMs: 100, duplicateWindowMs: 50 }, () => now);
  assertEquals(log.append(event(1), "same"), true);
  assertEquals(log.append(event(1), "same"), false);
  now = 60;
  assertEquals(log.append(event(1), "same"), true, "the duplicate window has passed");
  now = 150;
  log.trim();
  assertEquals(log.size, 1);
  assertEquals(log.firstSeq, 2);
});
