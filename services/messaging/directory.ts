/**
 * The current addressable devices of an account, as SendMessage checks envelopes against them.
 * The rule for "addressable" is a domain module over the auth store port that auth and
 * messaging share (services/store/addressable.ts).
 *
 * Reading it costs several store queries per device, on every send. `cachedDirectory` keeps
 * answers for a short time (default 1 s) and is only trusted when it AGREES with the request:
 * a send whose envelopes do not match the cached set is checked again against the store, so a
 * new device or a reinstall is never refused because of the cache. What the cache can do is
 * accept, within that second, a send that still matches the previous device set (the same race
 * a send has with a device change anyway, widened by the TTL); revocations seen by this
 * instance drop their entry at once.
 */

import { addressableDevices } from "../store/addressable.ts";
import type { AuthStores } from "../store/auth_ports.ts";
import type { CurrentDevice } from "./device_set.ts";

export interface DeviceDirectory {
  /**
   * Addressable devices of the account; undefined when the account does not exist.
   * `fresh` bypasses any cache.
   */
  addressable(accountId: string, fresh?: boolean): Promise<CurrentDevice[] | undefined>;
  /** Drops what is known about an account (a device of it changed). */
  forget(accountId: string): void;
}

export function storeDirectory(stores: AuthStores): DeviceDirectory {
  return {
    async addressable(accountId) {
      const devices = await addressableDevices(stores, accountId);
      if (devices.length > 0) {
        return devices.map((device) => ({
          deviceId: device.id,
          registrationId: device.registrationId,
        }));
      }
      // Rare path: tell an unknown account from one without published keys.
      return (await stores.accounts.byId(accountId)) ? [] : undefined;
    },
    forget() {},
  };
}

export interface DirectoryCacheOptions {
  ttlMs: number;
  maxEntries?: number;
  now?: () => number;
}

export function cachedDirectory(
  source: DeviceDirectory,
  options: DirectoryCacheOptions,
): DeviceDirectory {
  const { ttlMs } = options;
  const maxEntries = options.maxEntries ?? 100_000;
  const now = options.now ?? Date.now;
  const entries = new Map<string, { devices: CurrentDevice[] | undefined; atMs: number }>();
  /** Lookups in progress, shared by concurrent sends to the same account. */
  const loading = new Map<string, Promise<CurrentDevice[] | undefined>>();
  const load = (accountId: string) => {
    const running = loading.get(accountId);
    if (running) return running;
    const startedMs = now();
    const promise = source.addressable(accountId, true).then((devices) => {
      // Only a load that started after the last forget() may fill the cache.
      if (loading.get(accountId) === promise) {
        entries.delete(accountId);
        if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
        entries.set(accountId, { devices, atMs: startedMs });
      }
      return devices;
    }).finally(() => {
      if (loading.get(accountId) === promise) loading.delete(accountId);
    });
    loading.set(accountId, promise);
    return promise;
  };
  return {
    addressable(accountId, fresh = false) {
      if (ttlMs <= 0 || fresh) return load(accountId);
      const hit = entries.get(accountId);
      if (hit && now() - hit.atMs < ttlMs) return Promise.resolve(hit.devices);
      return load(accountId);
    },
    forget(accountId) {
      entries.delete(accountId);
      loading.delete(accountId);
    },
  };
}
