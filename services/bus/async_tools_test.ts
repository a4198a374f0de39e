import { Pause, Slots, withTimeout } from "./async_tools.ts";
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";

Deno.test("Slots grants up to its size, queues the rest, and releases waiters with false on abort", async () => {
  const slots = new Slots(1);
  assert(await slots.acquire());
  const waiting = slots.acquire();
  slots.release();
  assert(await waiting);
  const aborted = slots.acquire();
  slots.abort();
  assertEquals(await aborted, false);
  assertEquals(await slots.acquire(), false);
});

Deno.test("Pause.cancel ends a sleep at once and leaves no timer", async () => {
  const pause = new Pause();
  const started = Date.now();
  const sleeping = pause.sleep(10_000);
  pause.cancel();
  await sleeping;
  assert(Date.now() - started < 1_000);
});

Deno.test("withTimeout passes results through and rejects late ones", async () => {
  assertEquals(await withTimeout(Promise.resolve(7), 1_000, () => new Error("late")), 7);
  const never = new Promise<number>(() => {});
  await assertRejects(() => withTimeout(never, 10, () => new Error("late")), /late/);
});
