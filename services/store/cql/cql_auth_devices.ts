/**
 * DeviceStore on CQL. The account's partition carries the authoritative device set in a
 * static column; adding or removing a device is one conditional batch that moves the set
 * (IF device_ids = <the set read>) together with the device row, so the device cap holds
 * under concurrent logins on any number of instances. Rows outside the set (a touch racing a
 * removal can leave one) are ignored and swept.
 */
import { type Device, DeviceLimitError, type DeviceStore } from "../auth_ports.ts";
import {
  checkDeviceName,
  checkId,
  checkMaxDevices,
  checkMs,
  DEVICES_PER_ACCOUNT_MAX,
  validateDevice,
  validateReinstall,
} from "../auth_rules.ts";
import { StoreInputError, StoreUnavailableError } from "../errors.ts";
import type { CqlKeyShelf } from "./cql_auth_keys.ts";
import { sleep } from "../../platform/time.ts";
import { decideBatch, forEachLimited, readAll } from "./cql_auth_support.ts";
import type { CqlRefreshTokens } from "./cql_auth_tokens.ts";
import type { CqlRow, CqlSession } from "./cql_session.ts";

const SET_ATTEMPTS_MAX = 32;
/** Device rows read per account: the cap plus room for swept leftovers. */
const DEVICE_ROWS_MAX = DEVICES_PER_ACCOUNT_MAX * 10;
const COLUMNS = "device_id, name, platform, registration_id, created_at, last_seen_at";

function statements(ks: string) {
  return {
    set: `SELECT device_ids FROM ${ks}.devices WHERE account_id = ? LIMIT 1`,
    moveSet: `UPDATE ${ks}.devices SET device_ids = ? WHERE account_id = ? IF device_ids = ?`,
    insert: `INSERT INTO ${ks}.devices (account_id, ${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    get: `SELECT device_ids, ${COLUMNS} FROM ${ks}.devices WHERE account_id = ? AND device_id = ?`,
    all: `SELECT device_ids, ${COLUMNS} FROM ${ks}.devices WHERE account_id = ?`,
    rename: `UPDATE ${ks}.devices SET name = ? WHERE account_id = ? AND device_id = ?`,
    reinstall: `UPDATE ${ks}.devices SET registration_id = ?, name = ?, platform = ?
      WHERE account_id = ? AND device_id = ?`,
    touch: `UPDATE ${ks}.devices SET last_seen_at = ? WHERE account_id = ? AND device_id = ?`,
    deleteRow: `DELETE FROM ${ks}.devices WHERE account_id = ? AND device_id = ?`,
    deleteAccount: `DELETE FROM ${ks}.devices WHERE account_id = ?`,
  };
}

type DeviceSet = string[] | null;

const setOf = (row: CqlRow | undefined): DeviceSet =>
  (row?.device_ids as string[] | null | undefined) ?? null;

export class CqlDevices implements DeviceStore {
  readonly #s: CqlSession;
  readonly #q: ReturnType<typeof statements>;
  readonly #shelf: CqlKeyShelf;
  readonly #tokens: CqlRefreshTokens;

  constructor(session: CqlSession, keyspace: string, shelf: CqlKeyShelf, tokens: CqlRefreshTokens) {
    this.#s = session;
    this.#q = statements(keyspace);
    this.#shelf = shelf;
    this.#tokens = tokens;
  }

  async create(device: Device, maxDevices: number): Promise<void> {
    validateDevice(device);
    checkMaxDevices(maxDevices);
    await this.#moveSet(device.accountId, "adding a device", (ids) => {
      if (ids.includes(device.id)) throw new StoreInputError(`device ${device.id} already exists`);
      if (ids.length >= maxDevices) throw new DeviceLimitError(maxDevices);
      return {
        next: [...ids, device.id],
        with: {
          query: this.#q.insert,
          params: [
            device.accountId,
            device.id,
            device.name,
            device.platform,
            device.registrationId,
            BigInt(device.createdAtMs),
            BigInt(device.lastSeenAtMs),
          ],
        },
        // A timed-out earlier attempt that won shows up as our id already in the set.
        mine: (set) => set.includes(device.id),
      };
    });
  }

  async get(accountId: string, deviceId: string): Promise<Device | undefined> {
    checkIds(accountId, deviceId);
    const row = (await this.#s.execute(this.#q.get, [accountId, deviceId])).rows[0];
    return row && setOf(row)?.includes(deviceId) ? deviceFromRow(accountId, row) : undefined;
  }

  async list(accountId: string): Promise<Device[]> {
    checkId(accountId, "accountId");
    const rows = await readAll(this.#s, this.#q.all, [accountId], DEVICE_ROWS_MAX);
    const ids = new Set(setOf(rows[0]) ?? []);
    const leftovers = rows.filter((row) =>
      row.device_id != null && !ids.has(String(row.device_id))
    );
    await forEachLimited(leftovers, 4, async (row) => {
      await this.#s.execute(this.#q.deleteRow, [accountId, String(row.device_id)]);
    });
    return rows
      .filter((row) => ids.has(String(row.device_id)) && row.created_at != null)
      .map((row) => deviceFromRow(accountId, row))
      .sort((a, b) => a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async rename(accountId: string, deviceId: string, name: string): Promise<boolean> {
    checkIds(accountId, deviceId);
    checkDeviceName(name);
    if (!await this.get(accountId, deviceId)) return false;
    await this.#s.execute(this.#q.rename, [name, accountId, deviceId]);
    return true;
  }

  async reinstall(
    accountId: string,
    deviceId: string,
    update: { registrationId: number; name: string; platform: number },
  ): Promise<boolean> {
    checkIds(accountId, deviceId);
    validateReinstall(update);
    if (!await this.get(accountId, deviceId)) return false;
    const { registrationId, name, platform } = update;
    await this.#s.execute(this.#q.reinstall, [registrationId, name, platform, accountId, deviceId]);
    return true;
  }

  async touch(accountId: string, deviceId: string, atMs: number): Promise<void> {
    checkIds(accountId, deviceId);
    checkMs(atMs, "atMs");
    await this.#s.execute(this.#q.touch, [BigInt(atMs), accountId, deviceId]);
  }

  /**
   * Takes the device out of the set (with its row), then deletes its keys and refresh
   * tokens. The cleanup runs even when the device is already gone, so retrying a removal
   * that failed half-way finishes it.
   */
  async remove(accountId: string, deviceId: string): Promise<boolean> {
    checkIds(accountId, deviceId);
    let removed = false;
    await this.#moveSet(accountId, "removing a device", (ids) => {
      // Decided on the set of the attempt that wins, not of an earlier losing one.
      removed = ids.includes(deviceId);
      if (!removed) return undefined;
      const next = ids.filter((id) => id !== deviceId);
      return {
        next,
        with: { query: this.#q.deleteRow, params: [accountId, deviceId] },
        mine: () => false,
      };
    });
    await this.clearKeys(accountId, deviceId);
    await this.#tokens.removeDevice(accountId, deviceId);
    return removed;
  }

  async clearKeys(accountId: string, deviceId: string): Promise<void> {
    checkIds(accountId, deviceId);
    await this.#shelf.clearDevice({ accountId, deviceId });
  }

  /** Every device id the account's partition names (set members and leftover rows). */
  async idsOf(accountId: string): Promise<string[]> {
    const rows = await readAll(this.#s, this.#q.all, [accountId], DEVICE_ROWS_MAX);
    const ids = new Set(setOf(rows[0]) ?? []);
    for (const row of rows) if (row.device_id != null) ids.add(String(row.device_id));
    return [...ids];
  }

  /** Deletes the account's device partition (its keys and tokens are the caller's). */
  async deleteAccount(accountId: string): Promise<void> {
    await this.#s.execute(this.#q.deleteAccount, [accountId]);
  }

  /**
   * Compare-and-set of the device set: `change` sees the current set and returns the next one
   * with the statement to apply in the same transaction (or undefined to do nothing). A lost
   * race returns the current set, and `change` runs again on it.
   */
  async #moveSet(
    accountId: string,
    what: string,
    change: (ids: string[]) => {
      next: string[];
      with: { query: string; params: unknown[] };
      mine: (ids: string[]) => boolean;
    } | undefined,
  ): Promise<void> {
    let current = setOf((await this.#s.execute(this.#q.set, [accountId])).rows[0]);
    for (let attempt = 1; attempt <= SET_ATTEMPTS_MAX; attempt++) {
      const step = change(current ?? []);
      if (!step) return;
      // An empty set is written as null: null is what a read of "no set" returns.
      const next = step.next.length > 0 ? step.next : null;
      const decision = await decideBatch(this.#s, what, [
        { query: this.#q.moveSet, params: [next, accountId, current] },
        step.with,
      ], (row) => step.mine(setOf(row) ?? []));
      if (decision.won) return;
      current = setOf(decision.row);
      if (attempt > 2) await sleep(Math.random() * 5 * attempt);
    }
    throw new StoreUnavailableError(
      `${what}: the device set kept changing after ${SET_ATTEMPTS_MAX} attempts; retry`,
    );
  }
}

function checkIds(accountId: string, deviceId: string): void {
  checkId(accountId, "accountId");
  checkId(deviceId, "deviceId");
}

function deviceFromRow(accountId: string, row: CqlRow): Device {
  return {
    accountId,
    id: String(row.device_id),
    name: String(row.name),
    platform: Number(row.platform),
    registrationId: Number(row.registration_id),
    createdAtMs: Number(row.created_at),
    lastSeenAtMs: Number(row.last_seen_at),
  };
}
