import { assertEquals } from "../../tests/assert.ts";
import { cachedDeviceStatus } from "./device_status.ts";

Deno.test("device status: cached for the TTL, forgotten on local revocation", async () => {
  let now = 0;
  let loads = 0;
  const revoked = new Set<string>();
  const cache = cachedDeviceStatus((a, d) => {
    loads++;
    return Promise.resolve(revoked.has(`${a}/${d}`) ? "revoked" : "active");
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

Deno.test("device status: a login (token family) is cached apart and forgotten with its device", async () => {
  const sessions = new Set<string>(["f1"]);
  const cache = cachedDeviceStatus(
    (_a, _d, f) => Promise.resolve(f && !sessions.has(f) ? "session-revoked" : "active"),
    { ttlMs: 60_000, now: () => 0 },
  );
  assertEquals(await cache.status("a", "d1", "f1"), "active");
  sessions.delete("f1");
  assertEquals(await cache.status("a", "d1", "f1"), "active", "still cached");
  cache.forget("a", "d1");
  assertEquals(await cache.status("a", "d1", "f1"), "session-revoked");
  assertEquals(await cache.status("a", "d1"), "active");
});
