/**
 * GroupStore on ScyllaDB/Cassandra. One partition per group (migrations/0004_groups.cql): the
 * group's state in static columns, one clustering row per accepted commit. The epoch decision
 * is one conditional batch on that partition (IF current_epoch = ?) that also writes the
 * commit row, so an epoch has exactly one commit and it is logged iff the epoch moved. The
 * membership index (group_members) is written before a roster gains a device and trimmed
 * after it loses one: a superset that readers check against the roster.
 */
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
import { checkDevice, deviceKey, validatePurge } from "../mailbox_rules.ts";
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
import { forEachLimited, toBuffer } from "./cql_auth_support.ts";
import type { CqlRow, CqlSession } from "./cql_session.ts";

const INDEX_CONCURRENCY = 16;

const toBytes = (value: unknown) =>
  value == null ? new Uint8Array(0) : new Uint8Array(value as Uint8Array);

function statements(ks: string) {
  const state = `current_epoch, cipher_suite, members, group_info, group_info_epoch, created_at,
    updated_at, fanned_out_epoch`;
  return {
    create: `INSERT INTO ${ks}.groups (group_id, current_epoch, cipher_suite, members, group_info,
      group_info_epoch, created_at, updated_at, fanned_out_epoch)
      VALUES (?, 0, ?, ?, ?, 0, ?, ?, 0) IF NOT EXISTS`,
    state: `SELECT group_id, ${state} FROM ${ks}.groups WHERE group_id = ? LIMIT 1`,
    move: `UPDATE ${ks}.groups SET current_epoch = ?, members = ?, updated_at = ?
      WHERE group_id = ? IF current_epoch = ?`,
    moveWithInfo: `UPDATE ${ks}.groups SET current_epoch = ?, members = ?, updated_at = ?,
      group_info = ?, group_info_epoch = ? WHERE group_id = ? IF current_epoch = ?`,
    logCommit: `INSERT INTO ${ks}.groups (group_id, epoch, commit_message, welcome,
      commit_group_info, sender_account, sender_device, record_key, added, removed, server_ts)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?`,
    fannedOut: `UPDATE ${ks}.groups SET fanned_out_epoch = ? WHERE group_id = ?`,
    dropWelcome: `DELETE welcome FROM ${ks}.groups WHERE group_id = ? AND epoch = ?`,
    commits: `SELECT epoch, commit_message, welcome, commit_group_info, sender_account,
      sender_device, record_key, added, removed, server_ts FROM ${ks}.groups
      WHERE group_id = ? AND epoch >= ? LIMIT ?`,
    indexAdd: `INSERT INTO ${ks}.group_members (account_id, device_id, group_id) VALUES (?, ?, ?)`,
    indexDrop:
      `DELETE FROM ${ks}.group_members WHERE account_id = ? AND device_id = ? AND group_id = ?`,
    indexRead: `SELECT group_id FROM ${ks}.group_members
      WHERE account_id = ? AND device_id = ? AND group_id > ? LIMIT ?`,
    deleteGroup: `DELETE FROM ${ks}.groups WHERE group_id = ?`,
    setMembers: `UPDATE ${ks}.groups SET members = ? WHERE group_id = ?
      IF current_epoch = ? AND members = ?`,
    recordClaim: `INSERT INTO ${ks}.key_package_claims (account_id, device_id, ref)
      VALUES (?, ?, ?) USING TTL ?`,
    claimed: `SELECT ref FROM ${ks}.key_package_claims
      WHERE account_id = ? AND device_id = ? AND ref IN ?`,
  };
}

export class CqlGroups implements GroupStore {
  readonly #s: CqlSession;
  readonly #q: ReturnType<typeof statements>;

  constructor(session: CqlSession, keyspace: string) {
    this.#s = session;
    this.#q = statements(keyspace);
  }

  async create(group: NewGroup): Promise<boolean> {
    validateNewGroup(group);
    const id = toBuffer(group.groupId);
    await this.#index([group.creator], id, "add");
    const result = await this.#s.execute(this.#q.create, [
      id,
      group.cipherSuite,
      encodeMembers([{ leafIndex: 0, device: group.creator }]),
      toBuffer(group.groupInfo),
      BigInt(group.nowMs),
      BigInt(group.nowMs),
    ]);
    return result.applied === true;
  }

  async get(groupId: Uint8Array): Promise<GroupState | undefined> {
    checkGroupId(groupId);
    const row = (await this.#s.execute(this.#q.state, [toBuffer(groupId)])).rows[0];
    return row && row.current_epoch != null ? stateOf(groupId, row) : undefined;
  }

  async commit(attempt: CommitAttempt): Promise<CommitOutcome> {
    validateCommit(attempt);
    const before = await this.get(attempt.groupId);
    if (!before) return { applied: false, currentEpoch: 0, missing: true };
    if (before.epoch !== attempt.epoch) return { applied: false, currentEpoch: before.epoch };
    const id = toBuffer(attempt.groupId);
    const change = rosterChange(before.members, attempt.members);
    await this.#index(change.joined, id, "add");
    const next = BigInt(attempt.epoch + 1);
    const members = encodeMembers(attempt.members);
    const now = BigInt(attempt.nowMs);
    const move = attempt.groupInfo.byteLength > 0
      ? {
        query: this.#q.moveWithInfo,
        params: [next, members, now, toBuffer(attempt.groupInfo), next, id, BigInt(attempt.epoch)],
      }
      : { query: this.#q.move, params: [next, members, now, id, BigInt(attempt.epoch)] };
    const { commit } = attempt;
    const result = await this.#s.batch([move, {
      query: this.#q.logCommit,
      params: [
        id,
        BigInt(attempt.epoch),
        toBuffer(commit.commit),
        toBuffer(commit.welcome),
        toBuffer(commit.groupInfo),
        commit.sender.accountId,
        commit.sender.deviceId,
        toBuffer(commit.recordKey),
        encodeDevices(commit.added),
        encodeDevices(commit.removed),
        BigInt(commit.serverTimestampMs),
        Math.max(1, Math.ceil(attempt.retentionMs / 1000)),
      ],
    }]);
    if (!result.applied) {
      const current = result.rows[0]?.current_epoch;
      return { applied: false, currentEpoch: current == null ? 0 : Number(current) };
    }
    // Trimming the index may fail and leave stale entries: readers drop those.
    await this.#index(change.left, id, "drop").catch(() => {});
    return { applied: true, epoch: attempt.epoch + 1 };
  }

  async markFannedOut(groupId: Uint8Array, epoch: number): Promise<void> {
    checkGroupId(groupId);
    const id = toBuffer(groupId);
    await this.#s.execute(this.#q.fannedOut, [BigInt(epoch + 1), id]);
    await this.#s.execute(this.#q.dropWelcome, [id, BigInt(epoch)]);
  }

  async commits(groupId: Uint8Array, sinceEpoch: number, limit: number) {
    checkGroupId(groupId);
    checkLimit(limit, GROUP_COMMITS_READ_MAX);
    const result = await this.#s.execute(this.#q.commits, [
      toBuffer(groupId),
      BigInt(sinceEpoch),
      limit,
    ]);
    return result.rows.filter((row) => row.epoch != null && row.commit_message != null)
      .map(commitOf);
  }

  async groupsOf(device: DeviceRef, after: Uint8Array | undefined, limit: number) {
    checkDevice(device, "device");
    checkLimit(limit, GROUP_PAGE_MAX);
    const result = await this.#s.execute(this.#q.indexRead, [
      device.accountId,
      device.deviceId,
      toBuffer(after ?? new Uint8Array(0)),
      limit,
    ]);
    const ids = result.rows.map((row) => toBytes(row.group_id));
    const states: (GroupState | undefined)[] = new Array(ids.length);
    await forEachLimited(ids.map((_, i) => i), INDEX_CONCURRENCY, async (i) => {
      states[i] = await this.get(ids[i]!);
    });
    const key = deviceKey(device);
    const found: { groupId: Uint8Array; epoch: number }[] = [];
    for (const [i, state] of states.entries()) {
      if (state?.members.some((m) => deviceKey(m.device) === key)) {
        found.push({ groupId: ids[i]!, epoch: state.epoch });
      } else {
        await this.#index([device], toBuffer(ids[i]!), "drop");
      }
    }
    return found;
  }

  async dropMember(groupId: Uint8Array, device: DeviceRef): Promise<boolean> {
    checkGroupId(groupId);
    checkDevice(device, "device");
    const id = toBuffer(groupId);
    const key = deviceKey(device);
    // A lightweight transaction on the epoch and roster: a commit racing it wins or waits.
    for (let attempt = 0; attempt < 16; attempt++) {
      const row = (await this.#s.execute(this.#q.state, [id])).rows[0];
      if (!row || row.current_epoch == null) break;
      const members = decodeMembers(String(row.members));
      const kept = members.filter((m) => deviceKey(m.device) !== key);
      if (kept.length === members.length) break;
      const result = await this.#s.execute(this.#q.setMembers, [
        encodeMembers(kept),
        id,
        row.current_epoch,
        row.members,
      ]);
      if (result.applied) {
        await this.#index([device], id, "drop");
        return true;
      }
    }
    await this.#index([device], id, "drop");
    return false;
  }

  async delete(groupId: Uint8Array): Promise<void> {
    const state = await this.get(groupId);
    if (!state) return;
    const id = toBuffer(groupId);
    await this.#s.execute(this.#q.deleteGroup, [id]);
    await this.#index(state.members.map((m) => m.device), id, "drop");
  }

  async recordClaim(device: DeviceRef, ref: string, nowMs: number, untilMs: number) {
    checkDevice(device, "device");
    checkRef(ref);
    if (!(untilMs > nowMs)) throw new StoreInputError("untilMs must be after nowMs");
    const ttl = Math.max(1, Math.ceil((untilMs - nowMs) / 1000));
    await this.#s.execute(this.#q.recordClaim, [device.accountId, device.deviceId, ref, ttl]);
  }

  async claimed(device: DeviceRef, refs: readonly string[], _nowMs: number) {
    checkDevice(device, "device");
    checkRefs(refs);
    if (refs.length === 0) return new Set<string>();
    // Rows leave by their TTL on the cluster's clock.
    const result = await this.#s.execute(this.#q.claimed, [
      device.accountId,
      device.deviceId,
      [...refs],
    ]);
    return new Set(result.rows.map((row) => String(row.ref)));
  }

  purgeExpired(nowMs: number, limit: number): Promise<number> {
    // Commit rows carry their retention as a TTL: nothing to scan or delete.
    return Promise.try(() => {
      validatePurge(nowMs, limit);
      return 0;
    });
  }

  async #index(devices: DeviceRef[], id: Buffer, how: "add" | "drop"): Promise<void> {
    const query = how === "add" ? this.#q.indexAdd : this.#q.indexDrop;
    await forEachLimited(devices, INDEX_CONCURRENCY, async (d) => {
      await this.#s.execute(query, [d.accountId, d.deviceId, id]);
    });
  }
}

function stateOf(groupId: Uint8Array, row: CqlRow): GroupState {
  return {
    groupId: new Uint8Array(groupId),
    cipherSuite: Number(row.cipher_suite),
    epoch: Number(row.current_epoch),
    members: decodeMembers(String(row.members)),
    groupInfo: toBytes(row.group_info),
    groupInfoEpoch: Number(row.group_info_epoch ?? 0),
    createdAtMs: Number(row.created_at),
    updatedAtMs: Number(row.updated_at),
    fannedOutEpoch: Number(row.fanned_out_epoch ?? 0),
  };
}

function commitOf(row: CqlRow): StoredCommit {
  return {
    epoch: Number(row.epoch),
    commit: toBytes(row.commit_message),
    welcome: toBytes(row.welcome),
    groupInfo: toBytes(row.commit_group_info),
    sender: { accountId: String(row.sender_account), deviceId: String(row.sender_device) },
    recordKey: toBytes(row.record_key),
    added: decodeDevices(String(row.added)),
    removed: decodeDevices(String(row.removed)),
    serverTimestampMs: Number(row.server_ts),
  };
}
