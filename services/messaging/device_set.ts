/**
 * The envelope-set rule, pure: a message carries exactly one envelope per current addressable
 * device of the recipient (and, when sync copies are sent, one per other addressable device of
 * the sender), each naming the device's current registration id.
 *
 * Missing or extra devices give MISMATCHED_DEVICES; only registration-id differences give
 * STALE_DEVICES. The detail lists every problem of both accounts, each list bounded.
 */

import type { DeviceAddress, MismatchedDevices } from "../../proto/gen/guardyn/v1/common.ts";

export interface CurrentDevice {
  deviceId: string;
  registrationId: number;
}

export interface EnvelopeTarget {
  deviceId: string;
  registrationId: number;
}

/** One account's expected devices and the envelopes addressed to it. */
export interface AccountTargets {
  accountId: string;
  current: readonly CurrentDevice[];
  envelopes: readonly EnvelopeTarget[];
}

export type DeviceSetVerdict =
  | { ok: true }
  | {
    ok: false;
    reason: "MISMATCHED_DEVICES" | "STALE_DEVICES";
    detail: MismatchedDevices;
    /** Human summary for the status message (counts only, no identifiers). */
    summary: string;
  };

/** The contract bounds each detail list (common.proto MismatchedDevices). */
export const MISMATCH_LIST_MAX = 20;

export function checkDeviceSets(accounts: readonly AccountTargets[]): DeviceSetVerdict {
  const missing: DeviceAddress[] = [];
  const extra: DeviceAddress[] = [];
  const stale: DeviceAddress[] = [];
  for (const { accountId, current, envelopes } of accounts) {
    const expected = new Map(current.map((device) => [device.deviceId, device.registrationId]));
    const addressed = new Set<string>();
    for (const envelope of envelopes) {
      addressed.add(envelope.deviceId);
      const registrationId = expected.get(envelope.deviceId);
      const address = { accountId, deviceId: envelope.deviceId };
      if (registrationId === undefined) extra.push(address);
      else if (registrationId !== envelope.registrationId) stale.push(address);
    }
    for (const device of current) {
      if (!addressed.has(device.deviceId)) missing.push({ accountId, deviceId: device.deviceId });
    }
  }
  if (missing.length === 0 && extra.length === 0 && stale.length === 0) return { ok: true };
  const reason = missing.length > 0 || extra.length > 0 ? "MISMATCHED_DEVICES" : "STALE_DEVICES";
  const summary = reason === "MISMATCHED_DEVICES"
    ? `envelopes do not match the current devices: ${missing.length} missing, ${extra.length} ` +
      `extra, ${stale.length} stale; fetch the device list and bundles again`
    : `${stale.length} device(s) were reinstalled (registration id changed); fetch their bundles ` +
      "and re-encrypt";
  return {
    ok: false,
    reason,
    detail: {
      missingDevices: missing.slice(0, MISMATCH_LIST_MAX),
      extraDevices: extra.slice(0, MISMATCH_LIST_MAX),
      staleDevices: stale.slice(0, MISMATCH_LIST_MAX),
    },
    summary,
  };
}
