/**
 * Creating and removing device records, shared by sign-in, registration and linking: the
 * account's device cap, and the revocation that every other service learns from the bus.
 */

import { resourceExhausted } from "../platform/errors.ts";
import { DeviceLimitError } from "../store/auth_ports.ts";
import type { AuthContextDeps } from "./context.ts";
import type { DeviceRegistrationInput } from "./validation.ts";

export async function createDeviceRecord(
  deps: AuthContextDeps,
  accountId: string,
  registration: DeviceRegistrationInput,
) {
  const at = deps.now();
  const device = {
    accountId,
    id: crypto.randomUUID(),
    name: registration.name,
    platform: registration.platform,
    registrationId: registration.registrationId,
    createdAtMs: at,
    lastSeenAtMs: at,
  };
  try {
    await deps.stores.devices.create(device, deps.settings.maxDevicesPerAccount);
  } catch (error) {
    if (error instanceof DeviceLimitError) {
      throw resourceExhausted(error.message, "DEVICE_LIMIT_REACHED");
    }
    throw error;
  }
  return device;
}

/** Removes devices and tells other services to purge what they hold for them. */
export async function removeDeviceRecords(
  deps: AuthContextDeps,
  accountId: string,
  deviceIds: string[],
): Promise<string[]> {
  const { stores, now } = deps;
  const removed: string[] = [];
  for (const deviceId of deviceIds) {
    if (await stores.devices.remove(accountId, deviceId)) removed.push(deviceId);
    await stores.refreshTokens.revokeDevice(accountId, deviceId);
    deps.forgetDevice(accountId, deviceId);
  }
  for (const deviceId of removed) {
    await deps.bus.publish({ kind: "device.revoked", accountId, deviceId, atMs: now() });
  }
  return removed;
}
