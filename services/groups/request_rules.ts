/**
 * Pure checks of GroupService requests against the contract's bounds, before any store access.
 * Every failure is an INVALID_ARGUMENT whose message names the field and the limit.
 */
import { invalidArgument } from "../platform/errors.ts";
import { MAILBOX_CONTENT_MAX_BYTES } from "../store/ports.ts";
import { GROUP_ID_MAX_BYTES } from "../store/group_ports.ts";
import type { DeviceAddress } from "../../proto/gen/guardyn/v1/common.ts";
import type { DeviceRef } from "../store/ports.ts";

export const GROUP_LIMITS = {
  /** A commit (MLSMessage with a PublicMessage). */
  commitMaxBytes: 1024 * 1024,
  /**
   * A Welcome, delivered through a mailbox: at most one envelope. Welcomes leave the ratchet
   * tree out (joiners take it from GetGroupState's GroupInfo), so they grow with the number
   * of added devices only.
   */
  welcomeMaxBytes: MAILBOX_CONTENT_MAX_BYTES,
  /**
   * A GroupInfo with the ratchet tree. X-Wing groups need about 1.4 MB at 1,000 devices
   * (143 KB per 100 measured with ts-mls), so the bound is 2 MiB, not the 1 MiB of the rest.
   */
  groupInfoMaxBytes: 2 * 1024 * 1024,
  /** An application message (MLSMessage with a PrivateMessage). */
  privateMessageMaxBytes: 128 * 1024,
  /** A self-remove proposal. */
  proposalMaxBytes: 64 * 1024,
  /** Devices one commit adds, and removes. */
  changesMax: 100,
  /** FetchCommits page size: default and maximum. */
  commitsDefault: 20,
  commitsMax: 100,
  /** ListGroups page size: default and maximum. */
  pageDefault: 20,
  pageMax: 100,
} as const;

const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const CLIENT_MESSAGE_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const PAGE_TOKEN = /^[0-9a-f]{2,128}$/;

export function checkGroupId(groupId: Uint8Array): Uint8Array {
  if (groupId.byteLength === 0 || groupId.byteLength > GROUP_ID_MAX_BYTES) {
    throw invalidArgument(`group_id must be 1..${GROUP_ID_MAX_BYTES} bytes`);
  }
  return groupId;
}

export function checkBytes(value: Uint8Array, field: string, min: number, max: number) {
  if (value.byteLength < min || value.byteLength > max) {
    throw invalidArgument(
      `${field} is ${value.byteLength} bytes; it must be ${min}..${max} bytes`,
    );
  }
  return value;
}

export function checkClientMessageId(id: string): string {
  if (!CLIENT_MESSAGE_ID_PATTERN.test(id)) {
    throw invalidArgument("client_message_id must be 1..64 chars of [A-Za-z0-9._-]");
  }
  return id;
}

export function checkEpoch(epoch: number): number {
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw invalidArgument("epoch is out of range");
  return epoch;
}

/** A list of distinct device addresses, at most `max`. */
export function checkDevices(list: readonly DeviceAddress[], field: string, max: number) {
  if (list.length > max) throw invalidArgument(`${field}: at most ${max} devices`);
  const seen = new Set<string>();
  return list.map((address, i): DeviceRef => {
    if (!ID_PATTERN.test(address.accountId) || !ID_PATTERN.test(address.deviceId)) {
      throw invalidArgument(`${field}[${i}] must name an account and a device (1..64 chars)`);
    }
    const key = identityOf(address);
    if (seen.has(key)) throw invalidArgument(`${field}[${i}] appears twice`);
    seen.add(key);
    return { accountId: address.accountId, deviceId: address.deviceId };
  });
}

/** A page size: 0 means `fallback`; above `max` is refused. */
export function checkLimit(value: number, field: string, fallback: number, max: number) {
  if (value === 0) return fallback;
  if (value > max) throw invalidArgument(`${field} must be at most ${max}`);
  return value;
}

/** The group id a ListGroups page token carries (hex), or undefined for the first page. */
export function pageAfter(token: string): Uint8Array | undefined {
  if (token === "") return undefined;
  if (!PAGE_TOKEN.test(token) || token.length % 2 !== 0) {
    throw invalidArgument("page.page_token is not a token this server issued");
  }
  return Uint8Array.from(token.match(/../g)!, (pair) => parseInt(pair, 16));
}

export function pageToken(groupId: Uint8Array): string {
  return Array.from(groupId, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The MLS credential identity of a device: "account:device". */
export function identityOf(device: DeviceRef): string {
  return `${device.accountId}:${device.deviceId}`;
}

/** The device an MLS credential identity names, or undefined when it names none. */
export function deviceOfIdentity(identity: string): DeviceRef | undefined {
  const [accountId, deviceId, extra] = identity.split(":");
  if (extra !== undefined || !accountId || !deviceId) return undefined;
  if (!ID_PATTERN.test(accountId) || !ID_PATTERN.test(deviceId)) return undefined;
  return { accountId, deviceId };
}
