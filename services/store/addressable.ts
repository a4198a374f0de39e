/**
 * A device is addressable (listed in bundles, required as a recipient) once its account has an
 * identity key and the device has a signed prekey and a last-resort KEM prekey.
 */

import type { AuthStores, Device } from "./auth_ports.ts";

export async function addressableDevices(
  stores: AuthStores,
  accountId: string,
  options: { identityKeyKnown?: boolean } = {},
): Promise<Device[]> {
  if (!options.identityKeyKnown) {
    const account = await stores.accounts.byId(accountId);
    if (!account?.identityKey) return [];
  }
  const result: Device[] = [];
  for (const device of await stores.devices.list(accountId)) {
    const counts = await stores.prekeys.counts({ accountId, deviceId: device.id });
    if (counts.signedPrekeyId > 0 && counts.hasLastResortKemPrekey) result.push(device);
  }
  return result;
}
