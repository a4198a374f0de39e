import { assert, assertEquals, assertThrows, captureError } from "../../tests/assert.ts";
import { GuardynError } from "./errors.ts";
import { RateLimiter } from "./rate_limit.ts";

Deno.test("rate limit: bursts up to the bucket size, then refills at the sustained rate", () => {
  let now = 0;
  const limiter = new RateLimiter({ burst: 3, perSecond: 2 }, 100, () => now);
  assert(limiter.tryTake("a") && limiter.tryTake("a") && limiter.tryTake("a"));
  assert(!limiter.allows("a"));
  assert(!limiter.tryTake("a"), "fourth call in the same instant is refused");
  assert(limiter.tryTake("b"), "keys are independent");
  now += 500; // one token back at 2/s
  assert(limiter.tryTake("a"));
  assert(!limiter.tryTake("a"));
  now += 10_000; // refill is capped at the burst
  assert(limiter.allows("a", 3) && !limiter.allows("a", 4));
  assert(limiter.tryTake("a", 3));
  assert(!limiter.tryTake("a"));
});

Deno.test("rate limit: take() throws RESOURCE_EXHAUSTED naming the limit", () => {
  const limiter = new RateLimiter({ burst: 1, perSecond: 1 }, 100, () => 0);
  limiter.take("k", "login");
  const error = captureError(() => limiter.take("k", "login"));
  assert(error instanceof GuardynError);
  assertEquals(error.reason, "RATE_LIMITED");
  assert(error.message.includes("1/s (burst 1)"));
  assertEquals(error.retryAfterMs, 1000, "clients get a retry hint");
});

Deno.test("rate limit: memory is bounded by evicting the least recently used keys", () => {
  const limiter = new RateLimiter({ burst: 1, perSecond: 0.001 }, 10, () => 0);
  for (let i = 0; i < 1000; i++) limiter.tryTake(`key-${i}`);
  assertEquals(limiter.size, 10);
  assertThrows(() => new RateLimiter({ burst: 0, perSecond: 1 }));
});
