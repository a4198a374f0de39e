import { assertEquals } from "../../tests/assert.ts";
import { cachedDeviceStatus } from "./device_status.ts";

Deno.test("device status: cached for the TTL, forgotten on local revocation", async () => {
  let now = 0;
  let loads = 0;
  const revoked = new Set<string>();
  const cache = cachedDeviceStatus((a, d) => {
    loads++;
    return Promise.resolve(!revoked.has(`${a}/${d}`));
  }, { ttlMs: 1000, now: () => now });
  assertEquals(await cache.status("a", "d1"), "active");
  assertEquals(await cache.status("a", "d1"), "active");
  assertEquals(loads, 1);
  revoked.add("a/d1");
  assertEquals(await cache.status("a", "d1"), "active", "still cached");
  now += 1001;
  assertEquals(await cache.status("a", "d1"), "revoked", "TTL bounds the delay");
  revoked.add("a/d2");
  assertEquals(await cache.status("a", "d2"), "revoked");
  revoked.delete("a/d2");
  cache.forget("a");
  assertEquals(await cache.status("a", "d2"), "active");
});
