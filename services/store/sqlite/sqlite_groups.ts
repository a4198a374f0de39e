/**
 * GroupStore on one SQLite file. A commit is one BEGIN IMMEDIATE transaction: compare the
 * epoch, move it, replace the roster and its membership index, and append the commit to the
 * log. node:sqlite is synchronous, so nothing interleaves within it in this process, and the
 * transaction serialises writers across processes sharing the file.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import {
  checkGroupId,
  checkLimit,
  checkRef,
  checkRefs,
  decodeDevices,
  decodeMembers,
  encodeDevices,
  encodeMembers,
  rosterChange,
  validateCommit,
  validateNewGroup,
} from "../group_rules.ts";
import { checkDevice, validatePurge } from "../mailbox_rules.ts";
import {
  type CommitAttempt,
  type CommitOutcome,
  GROUP_COMMITS_READ_MAX,
  GROUP_PAGE_MAX,
  type GroupState,
  type GroupStore,
  type NewGroup,
  type StoredCommit,
} from "../group_ports.ts";
import type { DeviceRef } from "../ports.ts";
import { StoreInputError } from "../errors.ts";
import { blob, immediate, type Row } from "./sqlite_tx.ts";

export class SqliteGroups implements GroupStore {
  readonly #db: DatabaseSync;
  readonly #q: Record<string, StatementSync>;

  constructor(db: DatabaseSync) {
    this.#db = db;
    const sql = {
      insertGroup: `INSERT INTO groups (group_id, cipher_suite, epoch, members, group_info,
        group_info_epoch, created_at, updated_at, fanned_out_epoch)
        VALUES (?, ?, 0, ?, ?, 0, ?, ?, 0) ON CONFLICT DO NOTHING`,
      getGroup: "SELECT * FROM groups WHERE group_id = ?",
      moveEpoch: `UPDATE groups SET epoch = epoch + 1, members = ?, updated_at = ?,
        group_info = iif(length(?) > 0, ?, group_info),
        group_info_epoch = iif(length(?) > 0, epoch + 1, group_info_epoch)
        WHERE group_id = ? AND epoch = ?`,
      insertCommit: `INSERT INTO group_commits (group_id, epoch, commit_message, welcome,
        group_info, sender_account, sender_device, record_key, added, removed, server_ts,
        expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      fannedOut: `UPDATE groups SET fanned_out_epoch = max(fanned_out_epoch, ?)
        WHERE group_id = ?`,
      dropWelcome: "UPDATE group_commits SET welcome = x'' WHERE group_id = ? AND epoch = ?",
      readCommits: `SELECT * FROM group_commits WHERE group_id = ? AND epoch >= ?
        ORDER BY epoch LIMIT ?`,
      addMember: "INSERT OR IGNORE INTO group_members VALUES (?, ?, ?)",
      dropMember:
        "DELETE FROM group_members WHERE account_id = ? AND device_id = ? AND group_id = ?",
      groupsOf: `SELECT m.group_id AS group_id, g.epoch AS epoch FROM group_members m
        JOIN groups g ON g.group_id = m.group_id
        WHERE m.account_id = ? AND m.device_id = ? AND m.group_id > ?
        ORDER BY m.group_id LIMIT ?`,
      deleteGroup: "DELETE FROM groups WHERE group_id = ?",
      setMembers: "UPDATE groups SET members = ? WHERE group_id = ?",
      deleteCommits: "DELETE FROM group_commits WHERE group_id = ?",
      deleteMembers: "DELETE FROM group_members WHERE group_id = ?",
      purge: `DELETE FROM group_commits WHERE (group_id, epoch) IN
        (SELECT group_id, epoch FROM group_commits WHERE expires_at <= ? LIMIT ?)`,
      recordClaim: `INSERT INTO key_package_claims VALUES (?, ?, ?, ?)
        ON CONFLICT DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)`,
      claimed: `SELECT ref FROM key_package_claims
        WHERE account_id = ? AND device_id = ? AND ref = ? AND expires_at > ?`,
      purgeClaims: `DELETE FROM key_package_claims WHERE (account_id, device_id, ref) IN
        (SELECT account_id, device_id, ref FROM key_package_claims WHERE expires_at <= ? LIMIT ?)`,
    };
    this.#q = Object.fromEntries(
      Object.entries(sql).map(([name, text]) => [name, db.prepare(text)]),
    );
  }

  create(group: NewGroup): Promise<boolean> {
    return Promise.try(() => {
      validateNewGroup(group);
      return immediate(this.#db, () => {
        const members = [{ leafIndex: 0, device: group.creator }];
        const inserted = this.#q.insertGroup!.run(
          group.groupId,
          group.cipherSuite,
          encodeMembers(members),
          group.groupInfo,
          group.nowMs,
          group.nowMs,
        ).changes;
        if (Number(inserted) === 0) return false;
        this.#q.addMember!.run(group.creator.accountId, group.creator.deviceId, group.groupId);
        return true;
      });
    });
  }

  get(groupId: Uint8Array): Promise<GroupState | undefined> {
    return Promise.try(() => {
      checkGroupId(groupId);
      const row = this.#q.getGroup!.get(groupId) as Row | undefined;
      return row ? stateOf(row) : undefined;
    });
  }

  commit(attempt: CommitAttempt): Promise<CommitOutcome> {
    return Promise.try(() => {
      validateCommit(attempt);
      return immediate(this.#db, (): CommitOutcome => {
        const row = this.#q.getGroup!.get(attempt.groupId) as Row | undefined;
        if (!row) return { applied: false, currentEpoch: 0, missing: true };
        if (Number(row.epoch) !== attempt.epoch) {
          return { applied: false, currentEpoch: Number(row.epoch) };
        }
        const info = attempt.groupInfo;
        this.#q.moveEpoch!.run(
          encodeMembers(attempt.members),
          attempt.nowMs,
          info,
          info,
          info,
          attempt.groupId,
          attempt.epoch,
        );
        const { commit } = attempt;
        this.#q.insertCommit!.run(
          attempt.groupId,
          attempt.epoch,
          commit.commit,
          commit.welcome,
          commit.groupInfo,
          commit.sender.accountId,
          commit.sender.deviceId,
          commit.recordKey,
          encodeDevices(commit.added),
          encodeDevices(commit.removed),
          commit.serverTimestampMs,
          attempt.nowMs + attempt.retentionMs,
        );
        const change = rosterChange(decodeMembers(String(row.members)), attempt.members);
        for (const d of change.joined) {
          this.#q.addMember!.run(d.accountId, d.deviceId, attempt.groupId);
        }
        for (const d of change.left) {
          this.#q.dropMember!.run(d.accountId, d.deviceId, attempt.groupId);
        }
        return { applied: true, epoch: attempt.epoch + 1 };
      });
    });
  }

  markFannedOut(groupId: Uint8Array, epoch: number): Promise<void> {
    return Promise.try(() => {
      checkGroupId(groupId);
      immediate(this.#db, () => {
        this.#q.fannedOut!.run(epoch + 1, groupId);
        this.#q.dropWelcome!.run(groupId, epoch);
      });
    });
  }

  commits(groupId: Uint8Array, sinceEpoch: number, limit: number): Promise<StoredCommit[]> {
    return Promise.try(() => {
      checkGroupId(groupId);
      checkLimit(limit, GROUP_COMMITS_READ_MAX);
      const rows = this.#q.readCommits!.all(groupId, sinceEpoch, limit) as Row[];
      return rows.map(commitOf);
    });
  }

  groupsOf(device: DeviceRef, after: Uint8Array | undefined, limit: number) {
    return Promise.try(() => {
      checkDevice(device, "device");
      checkLimit(limit, GROUP_PAGE_MAX);
      const rows = this.#q.groupsOf!.all(
        device.accountId,
        device.deviceId,
        after ?? new Uint8Array(0),
        limit,
      ) as Row[];
      return rows.map((row) => ({ groupId: blob(row.group_id)!, epoch: Number(row.epoch) }));
    });
  }

  dropMember(groupId: Uint8Array, device: DeviceRef): Promise<boolean> {
    return Promise.try(() => {
      checkGroupId(groupId);
      checkDevice(device, "device");
      return immediate(this.#db, () => {
        this.#q.dropMember!.run(device.accountId, device.deviceId, groupId);
        const row = this.#q.getGroup!.get(groupId) as Row | undefined;
        if (!row) return false;
        const members = decodeMembers(String(row.members));
        const kept = members.filter((m) =>
          m.device.accountId !== device.accountId || m.device.deviceId !== device.deviceId
        );
        if (kept.length === members.length) return false;
        this.#q.setMembers!.run(encodeMembers(kept), groupId);
        return true;
      });
    });
  }

  delete(groupId: Uint8Array): Promise<void> {
    return Promise.try(() => {
      checkGroupId(groupId);
      immediate(this.#db, () => {
        this.#q.deleteMembers!.run(groupId);
        this.#q.deleteCommits!.run(groupId);
        this.#q.deleteGroup!.run(groupId);
      });
    });
  }

  recordClaim(device: DeviceRef, ref: string, nowMs: number, untilMs: number): Promise<void> {
    return Promise.try(() => {
      checkDevice(device, "device");
      checkRef(ref);
      if (!(untilMs > nowMs)) throw new StoreInputError("untilMs must be after nowMs");
      this.#q.recordClaim!.run(device.accountId, device.deviceId, ref, untilMs);
    });
  }

  claimed(device: DeviceRef, refs: readonly string[], nowMs: number): Promise<Set<string>> {
    return Promise.try(() => {
      checkDevice(device, "device");
      checkRefs(refs);
      const found = new Set<string>();
      for (const ref of refs) {
        if (this.#q.claimed!.get(device.accountId, device.deviceId, ref, nowMs)) found.add(ref);
      }
      return found;
    });
  }

  purgeExpired(nowMs: number, limit: number): Promise<number> {
    return Promise.try(() => {
      validatePurge(nowMs, limit);
      this.#q.purgeClaims!.run(nowMs, limit);
      return Number(this.#q.purge!.run(nowMs, limit).changes);
    });
  }
}

function stateOf(row: Row): GroupState {
  return {
    groupId: blob(row.group_id)!,
    cipherSuite: Number(row.cipher_suite),
    epoch: Number(row.epoch),
    members: decodeMembers(String(row.members)),
    groupInfo: blob(row.group_info) ?? new Uint8Array(0),
    groupInfoEpoch: Number(row.group_info_epoch),
    createdAtMs: Number(row.created_at),
    updatedAtMs: Number(row.updated_at),
    fannedOutEpoch: Number(row.fanned_out_epoch),
  };
}

function commitOf(row: Row): StoredCommit {
  return {
    epoch: Number(row.epoch),
    commit: blob(row.commit_message)!,
    welcome: blob(row.welcome) ?? new Uint8Array(0),
    groupInfo: blob(row.group_info) ?? new Uint8Array(0),
    sender: { accountId: String(row.sender_account), deviceId: String(row.sender_device) },
    recordKey: blob(row.record_key)!,
    added: decodeDevices(String(row.added)),
    removed: decodeDevices(String(row.removed)),
    serverTimestampMs: Number(row.server_ts),
  };
}
