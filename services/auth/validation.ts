/** Input rules of the auth service: pure checks that throw INVALID_ARGUMENT with the limit. */

import { Platform } from "../../proto/gen/guardyn/v1/common.ts";
import { invalidArgument } from "../platform/errors.ts";

export const DEVICE_NAME_MAX = 64;
export const REGISTRATION_ID_MAX = 2_147_483_647;
/** Opaque ids the server issues (UUIDs); bounded so lookups stay cheap. */
const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
// deno-lint-ignore no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

export interface DeviceRegistrationInput {
  name: string;
  platform: number;
  registrationId: number;
}

export function checkDeviceName(name: string): string {
  const trimmed = name.trim();
  const length = [...trimmed].length;
  if (length < 1 || length > DEVICE_NAME_MAX || CONTROL_CHARS.test(trimmed)) {
    throw invalidArgument(
      `device name must be 1..${DEVICE_NAME_MAX} characters without control characters`,
    );
  }
  return trimmed;
}

export function checkDeviceRegistration(
  device: DeviceRegistrationInput | undefined,
): DeviceRegistrationInput {
  if (!device) throw invalidArgument("device is required");
  const validPlatform = Object.values(Platform).includes(device.platform) &&
    device.platform !== Platform.PLATFORM_UNSPECIFIED && device.platform !== Platform.UNRECOGNIZED;
  if (!validPlatform) throw invalidArgument("device.platform must be a known platform");
  if (
    !Number.isInteger(device.registrationId) || device.registrationId < 1 ||
    device.registrationId > REGISTRATION_ID_MAX
  ) {
    throw invalidArgument(`device.registration_id must be in 1..${REGISTRATION_ID_MAX}`);
  }
  return { ...device, name: checkDeviceName(device.name) };
}

export function checkId(value: string, field: string): string {
  if (!ID_PATTERN.test(value)) {
    throw invalidArgument(`${field} must be 1..64 characters of [A-Za-z0-9_-]`);
  }
  return value;
}

export function checkBytes(value: Uint8Array | undefined, field: string, min: number, max: number) {
  const length = value?.byteLength ?? 0;
  if (length < min || length > max) {
    throw invalidArgument(
      min === max ? `${field} must be ${min} bytes` : `${field} must be ${min}..${max} bytes`,
    );
  }
  return value ?? new Uint8Array();
}
