/**
 * The current addressable devices of an account, as SendMessage checks envelopes against them.
 * The rule for "addressable" lives with the auth service (services/auth/addressable.ts).
 */

import { addressableDevices } from "../auth/addressable.ts";
import type { AuthStores } from "../store/auth_ports.ts";
import type { CurrentDevice } from "./device_set.ts";

export interface DeviceDirectory {
  /** Addressable devices of the account; undefined when the account does not exist. */
  addressable(accountId: string): Promise<CurrentDevice[] | undefined>;
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
  };
}
