/** The example's rule, pure: how many more devices an account may link. */

export interface DeviceRoom {
  devices: number;
  remaining: number;
}

export function deviceRoom(devices: number, maxDevicesPerAccount: number): DeviceRoom {
  return { devices, remaining: Math.max(0, maxDevicesPerAccount - devices) };
}
