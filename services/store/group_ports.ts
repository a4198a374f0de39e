/**
 * Storage port of the groups service (the MLS delivery service): each group's epoch, its
 * roster mirror and latest GroupInfo, and the log of accepted commits. The one decision that
 * must be unique, which commit wins an epoch, is one atomic compare-and-set on the group's
 * epoch that writes the commit into the log in the same step (SQLite: one transaction; CQL:
 * one conditional batch on the group's partition). Every adapter passes
 * services/store/conformance/group_suite.ts, including racing commits for one epoch.
 */

import type { DeviceRef } from "./ports.ts";

declare module "./ports.ts" {
  interface StorePorts {
    groups: GroupStore;
  }
}

/** One leaf of the group's ratchet tree as the server mirrors it. */
export interface GroupMember {
  leafIndex: number;
  device: DeviceRef;
}

export interface GroupState {
  groupId: Uint8Array;
  cipherSuite: number;
  /** The current epoch: the number of commits accepted since creation. */
  epoch: number;
  /** Member leaves, by leaf index. */
  members: GroupMember[];
  /** Latest GroupInfo a member published (empty when none) and its epoch. */
  groupInfo: Uint8Array;
  groupInfoEpoch: number;
  createdAtMs: number;
  updatedAtMs: number;
  /**
   * The last epoch whose commit reached every mailbox. Below `epoch` only between an accepted
   * commit and the end of its fan-out, or after an instance died in between: the next writer
   * finishes that fan-out first (recovery, see the groups service).
   */
  fannedOutEpoch: number;
}

/** An accepted commit, kept for members that catch up (FetchCommits). */
export interface StoredCommit {
  /** The epoch the commit was created in; it produced epoch + 1. */
  epoch: number;
  commit: Uint8Array;
  /** Kept until the commit's fan-out finished, then cleared. */
  welcome: Uint8Array;
  /**
   * For a commit that adds devices: the GroupInfo (with the ratchet tree) of the epoch it
   * starts, which its Welcome leaves out; kept with the commit for the joiners. Else empty.
   */
  groupInfo: Uint8Array;
  sender: DeviceRef;
  /** The idempotency record key of the sender's request (a keyed hash). */
  recordKey: Uint8Array;
  /** Devices it added and removed (the fan-out sends the welcome to the added ones). */
  added: DeviceRef[];
  removed: DeviceRef[];
  serverTimestampMs: number;
}

export interface NewGroup {
  groupId: Uint8Array;
  cipherSuite: number;
  creator: DeviceRef;
  groupInfo: Uint8Array;
  nowMs: number;
}

export interface CommitAttempt {
  groupId: Uint8Array;
  /** The epoch the commit was made in: it wins only if this is still the current epoch. */
  epoch: number;
  /** The roster after the commit. */
  members: GroupMember[];
  commit: StoredCommit;
  /** GroupInfo of the new epoch (empty: keep the previous one). */
  groupInfo: Uint8Array;
  nowMs: number;
  /** How long commits are kept in the log for catching up. */
  retentionMs: number;
}

export type CommitOutcome =
  | { applied: true; epoch: number }
  | { applied: false; currentEpoch: number; missing?: true };

export interface GroupStore {
  /** Registers a group at epoch 0 with its creator at leaf 0; false when the id is taken. */
  create(group: NewGroup): Promise<boolean>;
  get(groupId: Uint8Array): Promise<GroupState | undefined>;
  /**
   * Accepts the commit iff the group is still at `attempt.epoch`: moves the epoch, replaces the
   * roster and writes the commit into the log, all at once, or nothing.
   */
  commit(attempt: CommitAttempt): Promise<CommitOutcome>;
  /** Records that the commit of `epoch` reached every mailbox; drops its welcome. */
  markFannedOut(groupId: Uint8Array, epoch: number): Promise<void>;
  /** Kept commits with epoch >= sinceEpoch, in epoch order, at most `limit`. */
  commits(groupId: Uint8Array, sinceEpoch: number, limit: number): Promise<StoredCommit[]>;
  /** The groups a device is a member of, ordered by group id, after `after`, at most `limit`. */
  groupsOf(
    device: DeviceRef,
    after: Uint8Array | undefined,
    limit: number,
  ): Promise<{ groupId: Uint8Array; epoch: number }[]>;
  /**
   * Takes a device out of the group's roster mirror and listing without a commit (it was
   * revoked or its account deleted): nothing more is sent to it. Its leaf stays in the MLS
   * tree until a member commits its removal. False when it was not a member.
   */
  dropMember(groupId: Uint8Array, device: DeviceRef): Promise<boolean>;
  /** Deletes a group, its log and its membership index. */
  delete(groupId: Uint8Array): Promise<void>;
  /**
   * Remembers that a key package of `device` (its SHA-256 ref, hex) was handed out to someone
   * adding devices to a group, until `untilMs`.
   */
  recordClaim(device: DeviceRef, ref: string, nowMs: number, untilMs: number): Promise<void>;
  /** Which of `refs` were handed out for `device` and are still remembered. */
  claimed(device: DeviceRef, refs: readonly string[], nowMs: number): Promise<Set<string>>;
  /** Deletes up to `limit` commits past their retention (CQL: nothing to do, rows have a TTL). */
  purgeExpired(nowMs: number, limit: number): Promise<number>;
}

/** Member devices of one group (the contract's bound). */
export const GROUP_MEMBERS_MAX = 1000;
/** Bytes of a group id. */
export const GROUP_ID_MAX_BYTES = 64;
/** Bytes of a commit, a welcome or a GroupInfo (the contract's bound). */
export const GROUP_HANDSHAKE_MAX_BYTES = 1024 * 1024;
/** Commits one FetchCommits returns. */
export const GROUP_COMMITS_READ_MAX = 100;
/** Groups one page of groupsOf returns. */
export const GROUP_PAGE_MAX = 500;
