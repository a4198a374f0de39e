/**
 * Device status for token checks, cached briefly so every call does not read the store. A
 * revocation on this instance drops the entry at once; on other instances it takes effect
 * within the cache TTL (seconds), far inside the access-token lifetime.
 */

import type { DeviceStatus } from "./tokens.ts";

export interface CachedDeviceStatus {
  status: DeviceStatus;
  /** Forget one device, or every device of an account. */
  forget(accountId: string, deviceId?: string): void;
}

export function cachedDeviceStatus(
  load: (
    accountId: string,
    deviceId: string,
    familyId?: string,
  ) => Promise<Awaited<ReturnType<DeviceStatus>>>,
  options: { ttlMs?: number; maxEntries?: number; now?: () => number } = {},
): CachedDeviceStatus {
  const ttlMs = options.ttlMs ?? 5_000;
  const maxEntries = options.maxEntries ?? 100_000;
  const now = options.now ?? (() => Date.now());
  type Status = Awaited<ReturnType<DeviceStatus>>;
  const cache = new Map<string, { status: Status; atMs: number }>();
  return {
    async status(accountId, deviceId, familyId) {
      const key = `${accountId}/${deviceId}/${familyId ?? ""}`;
      const hit = cache.get(key);
      if (hit && now() - hit.atMs < ttlMs) return hit.status;
      const status = await load(accountId, deviceId, familyId);
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
      cache.set(key, { status, atMs: now() });
      return status;
    },
    forget(accountId, deviceId) {
      const prefix = deviceId === undefined ? `${accountId}/` : `${accountId}/${deviceId}/`;
      for (const key of cache.keys()) if (key.startsWith(prefix)) cache.delete(key);
    },
  };
}
