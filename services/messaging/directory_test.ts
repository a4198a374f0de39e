import { assertEquals } from "../../tests/assert.ts";
import { cachedDirectory, type DeviceDirectory } from "./directory.ts";
import type { CurrentDevice } from "./device_set.ts";

function counting(devices: Map<string, CurrentDevice[]>) {
  const calls: string[] = [];
  const source: DeviceDirectory = {
    addressable(accountId) {
      calls.push(accountId);
      return Promise.resolve(devices.get(accountId)?.map((d) => ({ ...d })));
    },
    forget() {},
  };
  return { source, calls };
}

Deno.test("directory cache: answers within the TTL, reloads after it", async () => {
  let now = 0;
  const devices = new Map([["bob", [{ deviceId: "b1", registrationId: 1 }]]]);
  const { source, calls } = counting(devices);
  const directory = cachedDirectory(source, { ttlMs: 1000, now: () => now });
  assertEquals(await directory.addressable("bob"), [{ deviceId: "b1", registrationId: 1 }]);
  devices.set("bob", [{ deviceId: "b2", registrationId: 2 }]);
  now = 999;
  assertEquals((await directory.addressable("bob"))?.[0]?.deviceId, "b1");
  now = 1000;
  assertEquals((await directory.addressable("bob"))?.[0]?.deviceId, "b2");
  assertEquals(calls.length, 2);
  // Unknown accounts are cached as unknown too.
  assertEquals(await directory.addressable("nobody"), undefined);
  assertEquals(await directory.addressable("nobody"), undefined);
  assertEquals(calls.filter((c) => c === "nobody").length, 1);
});

Deno.test("directory cache: fresh reads and forget() bypass it; TTL 0 disables it", async () => {
  const devices = new Map([["bob", [{ deviceId: "b1", registrationId: 1 }]]]);
  const { source, calls } = counting(devices);
  const directory = cachedDirectory(source, { ttlMs: 60_000 });
  await directory.addressable("bob");
  devices.set("bob", []);
  assertEquals(await directory.addressable("bob", true), []);
  assertEquals(await directory.addressable("bob"), [], "a fresh read refills the cache");
  devices.set("bob", [{ deviceId: "b3", registrationId: 3 }]);
  directory.forget("bob");
  assertEquals((await directory.addressable("bob"))?.[0]?.deviceId, "b3");
  const uncached = cachedDirectory(source, { ttlMs: 0 });
  const before = calls.length;
  await uncached.addressable("bob");
  await uncached.addressable("bob");
  assertEquals(calls.length, before + 2);
});

Deno.test("directory cache: concurrent lookups of one account share one read; size is bounded", async () => {
  const devices = new Map(
    Array.from({ length: 5 }, (_, i) => [`a${i}`, [{ deviceId: "d", registrationId: i }]]),
  );
  const { source, calls } = counting(devices);
  const directory = cachedDirectory(source, { ttlMs: 60_000, maxEntries: 3 });
  await Promise.all([directory.addressable("a0"), directory.addressable("a0")]);
  assertEquals(calls, ["a0"]);
  for (let i = 1; i < 5; i++) await directory.addressable(`a${i}`);
  await directory.addressable("a0"); // evicted: read again
  assertEquals(calls.filter((c) => c === "a0").length, 2);
});
