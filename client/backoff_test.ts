import { assert, assertEquals } from "../tests/assert.ts";
import { Backoff, sleep } from "./backoff.ts";

Deno.test("backoff: the ceiling doubles up to the cap, jitter stays below it, reset starts over", () => {
  const top = new Backoff({ baseMs: 100, capMs: 1_000, random: () => 0.999999 });
  assertEquals([1, 2, 3, 4, 5, 6].map(() => top.next()), [99, 199, 399, 799, 999, 999]);
  assertEquals(top.attempts, 6);
  top.reset();
  assertEquals(top.next(), 99);
  const bottom = new Backoff({ baseMs: 100, capMs: 1_000, random: () => 0 });
  assertEquals(bottom.next(), 0);
  const real = new Backoff({ baseMs: 10, capMs: 50 });
  for (let i = 0; i < 100; i++) {
    const wait = real.next();
    assert(wait >= 0 && wait < 50, `wait ${wait}`);
  }
});

Deno.test("backoff: bad options are refused; sleep stops on abort", async () => {
  let refused = false;
  try {
    new Backoff({ baseMs: 0, capMs: 10 });
  } catch {
    refused = true;
  }
  assert(refused);
  const controller = new AbortController();
  const started = Date.now();
  const pending = sleep(10_000, controller.signal);
  controller.abort(new Error("stop"));
  let aborted = false;
  await pending.catch(() => (aborted = true));
  assert(aborted && Date.now() - started < 1_000);
});
