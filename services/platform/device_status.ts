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
  load: (accountId: string, deviceId: string) => Promise<boolean>,
  options: { ttlMs?: number; maxEntries?: number; now?: () => number } = {},
): CachedDeviceStatus {
  const ttlMs = options.ttlMs ?? 5_000;
  const maxEntries = options.maxEntries ?? 100_000;
  const now = options.now ?? (() => Date.now());
  const cache = new Map<string, { active: boolean; atMs: number }>();
  return {
    async status(accountId, deviceId) {
      const key = `${accountId}/${deviceId}`;
      const hit = cache.get(key);
      if (hit && now() - hit.atMs < ttlMs) return hit.active ? "active" : "revoked";
      const active = await load(accountId, deviceId);
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
      cache.set(key, { active, atMs: now() });
      return active ? "active" : "revoked";
    },
    forget(accountId, deviceId) {
      if (deviceId !== undefined) {
        cache.delete(`${accountId}/${deviceId}`);
        return;
      }
      for (const key of cache.keys()) if (key.startsWith(`${accountId}/`)) cache.delete(key);
    },
  };
}
