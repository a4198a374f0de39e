/**
 * Pure rules of the group store shared by every adapter: input limits and the encodings of a
 * roster and a device list in one column. No I/O here.
 */
import { StoreInputError } from "./errors.ts";
import { checkDevice, deviceKey } from "./mailbox_rules.ts";
import {
  type CommitAttempt,
  GROUP_HANDSHAKE_MAX_BYTES,
  GROUP_ID_MAX_BYTES,
  GROUP_MEMBERS_MAX,
  type GroupMember,
  type NewGroup,
} from "./group_ports.ts";
import type { DeviceRef } from "./ports.ts";

function fail(message: string): never {
  throw new StoreInputError(message);
}

export function checkGroupId(groupId: Uint8Array): void {
  if (!(groupId instanceof Uint8Array) || groupId.byteLength === 0) {
    fail("groupId must be non-empty bytes");
  }
  if (groupId.byteLength > GROUP_ID_MAX_BYTES) {
    fail(`groupId is ${groupId.byteLength} bytes, above the ${GROUP_ID_MAX_BYTES} limit`);
  }
}

function checkBytes(value: Uint8Array, what: string, min = 0): void {
  if (!(value instanceof Uint8Array)) fail(`${what} must be bytes`);
  if (value.byteLength < min) fail(`${what} must not be empty`);
  if (value.byteLength > GROUP_HANDSHAKE_MAX_BYTES) {
    fail(`${what} is ${value.byteLength} bytes, above the ${GROUP_HANDSHAKE_MAX_BYTES} limit`);
  }
}

function checkCount(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) fail(`${what} must be a non-negative integer`);
}

export function validateNewGroup(group: NewGroup): void {
  checkGroupId(group.groupId);
  checkCount(group.cipherSuite, "cipherSuite");
  checkDevice(group.creator, "creator");
  checkBytes(group.groupInfo, "groupInfo");
  checkCount(group.nowMs, "nowMs");
}

export function validateMembers(members: readonly GroupMember[]): void {
  if (!Array.isArray(members)) fail("members must be a list");
  if (members.length > GROUP_MEMBERS_MAX) {
    fail(`${members.length} members, above the ${GROUP_MEMBERS_MAX} limit`);
  }
  const leaves = new Set<number>();
  const devices = new Set<string>();
  members.forEach((member, i) => {
    checkCount(member.leafIndex, `members[${i}].leafIndex`);
    checkDevice(member.device, `members[${i}].device`);
    if (leaves.has(member.leafIndex)) fail(`leaf ${member.leafIndex} appears twice`);
    const key = deviceKey(member.device);
    if (devices.has(key)) fail(`members[${i}].device appears twice`);
    leaves.add(member.leafIndex);
    devices.add(key);
  });
}

export function validateCommit(attempt: CommitAttempt): void {
  checkGroupId(attempt.groupId);
  checkCount(attempt.epoch, "epoch");
  validateMembers(attempt.members);
  if (attempt.members.length === 0) fail("a commit cannot leave the group without members");
  const { commit } = attempt;
  if (commit.epoch !== attempt.epoch) fail("commit.epoch must equal the attempt's epoch");
  checkBytes(commit.commit, "commit", 1);
  checkBytes(commit.welcome, "welcome");
  checkBytes(commit.groupInfo, "commit.groupInfo");
  checkBytes(attempt.groupInfo, "groupInfo");
  checkDevice(commit.sender, "sender");
  if (!(commit.recordKey instanceof Uint8Array) || commit.recordKey.byteLength !== 32) {
    fail("recordKey must be 32 bytes");
  }
  for (const [list, what] of [[commit.added, "added"], [commit.removed, "removed"]] as const) {
    if (list.length > GROUP_MEMBERS_MAX) fail(`${what}: at most ${GROUP_MEMBERS_MAX} devices`);
    list.forEach((device, i) => checkDevice(device, `${what}[${i}]`));
  }
  checkCount(attempt.nowMs, "nowMs");
  checkCount(attempt.retentionMs, "retentionMs");
  if (attempt.retentionMs < 1000) fail("retentionMs must be at least 1000");
}

const REF = /^[0-9a-f]{64}$/;

/** A key package ref: the SHA-256 of the package as published, in lowercase hex. */
export function checkRef(ref: string): void {
  if (typeof ref !== "string" || !REF.test(ref)) fail("ref must be 64 lowercase hex characters");
}

export function checkRefs(refs: readonly string[]): void {
  if (!Array.isArray(refs) || refs.length > GROUP_MEMBERS_MAX) {
    fail(`refs: at most ${GROUP_MEMBERS_MAX}`);
  }
  refs.forEach(checkRef);
}

/** A roster in one text column: `[[leaf, account, device], ...]` by leaf index. */
export function encodeMembers(members: readonly GroupMember[]): string {
  return JSON.stringify(
    [...members].sort((a, b) => a.leafIndex - b.leafIndex)
      .map((m) => [m.leafIndex, m.device.accountId, m.device.deviceId]),
  );
}

export function decodeMembers(text: string): GroupMember[] {
  return (JSON.parse(text) as [number, string, string][]).map((
    [leafIndex, accountId, deviceId],
  ) => ({
    leafIndex,
    device: { accountId, deviceId },
  }));
}

/** A device list in one text column. */
export function encodeDevices(devices: readonly DeviceRef[]): string {
  return JSON.stringify(devices.map((d) => [d.accountId, d.deviceId]));
}

export function decodeDevices(text: string): DeviceRef[] {
  return (JSON.parse(text) as [string, string][]).map(([accountId, deviceId]) => ({
    accountId,
    deviceId,
  }));
}

/** Devices in `after` that are not in `before` (by device), and the other way round. */
export function rosterChange(
  before: readonly GroupMember[],
  after: readonly GroupMember[],
): { joined: DeviceRef[]; left: DeviceRef[] } {
  const had = new Set(before.map((m) => deviceKey(m.device)));
  const has = new Set(after.map((m) => deviceKey(m.device)));
  return {
    joined: after.filter((m) => !had.has(deviceKey(m.device))).map((m) => m.device),
    left: before.filter((m) => !has.has(deviceKey(m.device))).map((m) => m.device),
  };
}

/** A page size of a read: 1..max. */
export function checkLimit(limit: number, max: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > max) {
    throw new StoreInputError(`limit must be 1..${max}, got ${limit}`);
  }
}
