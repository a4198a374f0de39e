/**
 * AccountStore and DeviceStore on SQLite. Username uniqueness is the UNIQUE index on the
 * canonical username; the device cap is checked in the same transaction as the insert.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import {
  type Account,
  type AccountStore,
  type Device,
  DeviceLimitError,
  type DeviceStore,
  UsernameTakenError,
} from "../auth_ports.ts";
import {
  checkDeviceName,
  checkId,
  checkIdentityKey,
  checkMaxDevices,
  checkMs,
  checkPasswordHash,
  checkUsername,
  DEVICES_PER_ACCOUNT_MAX,
  searchRange,
  validateAccount,
  validateDevice,
  validateReinstall,
  validateSearch,
} from "../auth_rules.ts";
import { StoreInputError } from "../errors.ts";
import type { SqliteAuthCascade } from "./sqlite_auth_cascade.ts";
import { blob, immediate, type Row } from "./sqlite_tx.ts";
import { constantTimeEqual } from "../../../crypto/primitives.ts";

const ACCOUNT_COLUMNS =
  "id, username, password_hash, identity_key, identity_key_changed_at, created_at";

export class SqliteAccounts implements AccountStore {
  readonly #db: DatabaseSync;
  readonly #cascade: SqliteAuthCascade;
  readonly #insert: StatementSync;
  readonly #byId: StatementSync;
  readonly #byUsername: StatementSync;
  readonly #setPassword: StatementSync;
  readonly #setIdentity: StatementSync;
  readonly #searchFrom: StatementSync;
  readonly #searchAfter: StatementSync;
  readonly #delete: StatementSync;

  constructor(db: DatabaseSync, cascade: SqliteAuthCascade) {
    this.#db = db;
    this.#cascade = cascade;
    this.#insert = db.prepare(
      `INSERT INTO accounts (${ACCOUNT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (username) DO NOTHING`,
    );
    this.#byId = db.prepare(`SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE id = ?`);
    this.#byUsername = db.prepare(`SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE username = ?`);
    this.#setPassword = db.prepare("UPDATE accounts SET password_hash = ? WHERE id = ?");
    this.#setIdentity = db.prepare(
      "UPDATE accounts SET identity_key = ?, identity_key_changed_at = ? WHERE id = ?",
    );
    // Two statements so each is one index range, bounded at both ends and by the limit.
    this.#searchFrom = db.prepare(
      `SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE username >= ? AND username < ?
       ORDER BY username LIMIT ?`,
    );
    this.#searchAfter = db.prepare(
      `SELECT ${ACCOUNT_COLUMNS} FROM accounts WHERE username > ? AND username < ?
       ORDER BY username LIMIT ?`,
    );
    this.#delete = db.prepare("DELETE FROM accounts WHERE id = ?");
  }

  create(account: Account): Promise<void> {
    return Promise.try(() => {
      validateAccount(account);
      const changes = this.#insert.run(
        account.id,
        account.username,
        account.passwordHash,
        account.identityKey ?? null,
        account.identityKeyChangedAtMs ?? null,
        account.createdAtMs,
      ).changes;
      if (Number(changes) === 0) throw new UsernameTakenError();
    });
  }

  byId(accountId: string): Promise<Account | undefined> {
    return Promise.try(() => {
      checkId(accountId, "accountId");
      return accountFromRow(this.#byId.get(accountId) as Row | undefined);
    });
  }

  byUsername(username: string): Promise<Account | undefined> {
    return Promise.try(() => {
      checkUsername(username);
      return accountFromRow(this.#byUsername.get(username) as Row | undefined);
    });
  }

  setPasswordHash(accountId: string, passwordHash: string): Promise<void> {
    return Promise.try(() => {
      checkId(accountId, "accountId");
      checkPasswordHash(passwordHash);
      this.#setPassword.run(passwordHash, accountId);
    });
  }

  setIdentityKey(accountId: string, identityKey: Uint8Array, replace: boolean, atMs: number) {
    return Promise.try(() => {
      checkId(accountId, "accountId");
      checkIdentityKey(identityKey);
      checkMs(atMs, "atMs");
      return immediate(this.#db, () => {
        const row = this.#byId.get(accountId) as Row | undefined;
        if (!row) throw new StoreInputError(`account ${accountId} does not exist`);
        const current = blob(row.identity_key);
        if (current && constantTimeEqual(current, identityKey)) return "unchanged" as const;
        if (current && !replace) return "conflict" as const;
        this.#setIdentity.run(identityKey, atMs, accountId);
        return "set" as const;
      });
    });
  }

  searchByPrefix(prefix: string, afterUsername: string, limit: number): Promise<Account[]> {
    return Promise.try(() => {
      validateSearch(prefix, afterUsername, limit);
      const range = searchRange(prefix, afterUsername);
      const statement = range.inclusive ? this.#searchFrom : this.#searchAfter;
      const rows = statement.all(range.from, range.end, limit) as Row[];
      return rows.map((row) => accountFromRow(row)!);
    });
  }

  delete(accountId: string): Promise<void> {
    return Promise.try(() => {
      checkId(accountId, "accountId");
      immediate(this.#db, () => {
        this.#cascade.account(accountId);
        this.#delete.run(accountId);
      });
    });
  }
}

function accountFromRow(row: Row | undefined): Account | undefined {
  if (!row) return undefined;
  const identityKey = blob(row.identity_key);
  return {
    id: String(row.id),
    username: String(row.username),
    passwordHash: String(row.password_hash),
    ...(identityKey ? { identityKey } : {}),
    ...(row.identity_key_changed_at !== null
      ? { identityKeyChangedAtMs: Number(row.identity_key_changed_at) }
      : {}),
    createdAtMs: Number(row.created_at),
  };
}

const DEVICE_COLUMNS = "account_id, id, name, platform, registration_id, created_at, last_seen_at";

export class SqliteDevices implements DeviceStore {
  readonly #db: DatabaseSync;
  readonly #cascade: SqliteAuthCascade;
  readonly #count: StatementSync;
  readonly #exists: StatementSync;
  readonly #insert: StatementSync;
  readonly #get: StatementSync;
  readonly #list: StatementSync;
  readonly #rename: StatementSync;
  readonly #reinstall: StatementSync;
  readonly #touch: StatementSync;
  readonly #delete: StatementSync;

  constructor(db: DatabaseSync, cascade: SqliteAuthCascade) {
    this.#db = db;
    this.#cascade = cascade;
    this.#count = db.prepare("SELECT count(*) AS n FROM devices WHERE account_id = ?");
    this.#exists = db.prepare("SELECT 1 FROM devices WHERE account_id = ? AND id = ?");
    this.#insert = db.prepare(
      `INSERT INTO devices (${DEVICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#get = db.prepare(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE account_id = ? AND id = ?`);
    this.#list = db.prepare(
      `SELECT ${DEVICE_COLUMNS} FROM devices WHERE account_id = ? ORDER BY created_at, id LIMIT ?`,
    );
    this.#rename = db.prepare("UPDATE devices SET name = ? WHERE account_id = ? AND id = ?");
    this.#reinstall = db.prepare(
      `UPDATE devices SET registration_id = ?, name = ?, platform = ?
       WHERE account_id = ? AND id = ?`,
    );
    this.#touch = db.prepare("UPDATE devices SET last_seen_at = ? WHERE account_id = ? AND id = ?");
    this.#delete = db.prepare("DELETE FROM devices WHERE account_id = ? AND id = ?");
  }

  create(device: Device, maxDevices: number): Promise<void> {
    return Promise.try(() => {
      validateDevice(device);
      checkMaxDevices(maxDevices);
      immediate(this.#db, () => {
        if (this.#exists.get(device.accountId, device.id)) {
          throw new StoreInputError(`device ${device.id} already exists`);
        }
        const { n } = this.#count.get(device.accountId) as Row;
        if (Number(n) >= maxDevices) throw new DeviceLimitError(maxDevices);
        this.#insert.run(
          device.accountId,
          device.id,
          device.name,
          device.platform,
          device.registrationId,
          device.createdAtMs,
          device.lastSeenAtMs,
        );
      });
    });
  }

  get(accountId: string, deviceId: string): Promise<Device | undefined> {
    return Promise.try(() => {
      checkIds(accountId, deviceId);
      const row = this.#get.get(accountId, deviceId) as Row | undefined;
      return row ? deviceFromRow(row) : undefined;
    });
  }

  list(accountId: string): Promise<Device[]> {
    return Promise.try(() => {
      checkId(accountId, "accountId");
      const rows = this.#list.all(accountId, DEVICES_PER_ACCOUNT_MAX) as Row[];
      return rows.map(deviceFromRow);
    });
  }

  rename(accountId: string, deviceId: string, name: string): Promise<boolean> {
    return Promise.try(() => {
      checkIds(accountId, deviceId);
      checkDeviceName(name);
      return Number(this.#rename.run(name, accountId, deviceId).changes) > 0;
    });
  }

  reinstall(
    accountId: string,
    deviceId: string,
    update: { registrationId: number; name: string; platform: number },
  ): Promise<boolean> {
    return Promise.try(() => {
      checkIds(accountId, deviceId);
      validateReinstall(update);
      const { registrationId, name, platform } = update;
      const changes = this.#reinstall.run(registrationId, name, platform, accountId, deviceId);
      return Number(changes.changes) > 0;
    });
  }

  touch(accountId: string, deviceId: string, atMs: number): Promise<void> {
    return Promise.try(() => {
      checkIds(accountId, deviceId);
      checkMs(atMs, "atMs");
      this.#touch.run(atMs, accountId, deviceId);
    });
  }

  remove(accountId: string, deviceId: string): Promise<boolean> {
    return Promise.try(() => {
      checkIds(accountId, deviceId);
      return immediate(this.#db, () => {
        this.#cascade.device(accountId, deviceId);
        return Number(this.#delete.run(accountId, deviceId).changes) > 0;
      });
    });
  }

  clearKeys(accountId: string, deviceId: string): Promise<void> {
    return Promise.try(() => {
      checkIds(accountId, deviceId);
      immediate(this.#db, () => this.#cascade.deviceKeys(accountId, deviceId));
    });
  }
}

function checkIds(accountId: string, deviceId: string): void {
  checkId(accountId, "accountId");
  checkId(deviceId, "deviceId");
}

function deviceFromRow(row: Row): Device {
  return {
    accountId: String(row.account_id),
    id: String(row.id),
    name: String(row.name),
    platform: Number(row.platform),
    registrationId: Number(row.registration_id),
    createdAtMs: Number(row.created_at),
    lastSeenAtMs: Number(row.last_seen_at),
  };
}
