/** PushStore on SQLite (migration 7, push_registrations). */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { DeviceRef } from "../ports.ts";
import type { PushPlatformName, PushRegistration, PushStore } from "../push_ports.ts";
import { checkDevice } from "../mailbox_rules.ts";
import {
  checkAccountId,
  checkClaimTimes,
  checkPushToken,
  PUSH_LIST_MAX,
  validatePushRegistration,
} from "../push_rules.ts";
import type { Row } from "./sqlite_tx.ts";

export class SqlitePush implements PushStore {
  readonly #q: Record<string, StatementSync>;

  constructor(db: DatabaseSync) {
    const sql = {
      put: `INSERT INTO push_registrations VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT DO UPDATE SET platform = excluded.platform, token = excluded.token,
        app_id = excluded.app_id, registered_at = excluded.registered_at,
        last_delivered_at = excluded.last_delivered_at`,
      get: "SELECT * FROM push_registrations WHERE account_id = ? AND device_id = ?",
      list: "SELECT * FROM push_registrations WHERE account_id = ? ORDER BY device_id LIMIT ?",
      remove: "DELETE FROM push_registrations WHERE account_id = ? AND device_id = ?",
      removeToken: `DELETE FROM push_registrations WHERE account_id = ? AND device_id = ?
        AND token = ?`,
      claim: `UPDATE push_registrations SET last_delivered_at = ?
        WHERE account_id = ? AND device_id = ? AND token = ? AND last_delivered_at = ?`,
      purge: "DELETE FROM push_registrations WHERE account_id = ?",
    };
    this.#q = Object.fromEntries(Object.entries(sql).map(([k, v]) => [k, db.prepare(v)]));
  }

  put(r: PushRegistration): Promise<void> {
    return Promise.try(() => {
      validatePushRegistration(r);
      this.#q.put!.run(
        r.device.accountId,
        r.device.deviceId,
        r.platform,
        r.token,
        r.appId,
        r.registeredAtMs,
        r.lastDeliveredAtMs,
      );
    });
  }

  get(device: DeviceRef): Promise<PushRegistration | undefined> {
    return Promise.try(() => {
      checkDevice(device, "device");
      const row = this.#q.get!.get(device.accountId, device.deviceId) as Row | undefined;
      return row ? registrationOf(row) : undefined;
    });
  }

  list(accountId: string): Promise<PushRegistration[]> {
    return Promise.try(() => {
      checkAccountId(accountId);
      return (this.#q.list!.all(accountId, PUSH_LIST_MAX) as Row[]).map(registrationOf);
    });
  }

  remove(device: DeviceRef, onlyToken?: string): Promise<boolean> {
    return Promise.try(() => {
      checkDevice(device, "device");
      if (onlyToken === undefined) {
        return Number(this.#q.remove!.run(device.accountId, device.deviceId).changes) > 0;
      }
      checkPushToken(onlyToken);
      const result = this.#q.removeToken!.run(device.accountId, device.deviceId, onlyToken);
      return Number(result.changes) > 0;
    });
  }

  claim(device: DeviceRef, token: string, seenMs: number, atMs: number): Promise<boolean> {
    return Promise.try(() => {
      checkDevice(device, "device");
      checkPushToken(token);
      checkClaimTimes(seenMs, atMs);
      const { changes } = this.#q.claim!.run(
        atMs,
        device.accountId,
        device.deviceId,
        token,
        seenMs,
      );
      return Number(changes) === 1;
    });
  }

  purgeAccount(accountId: string): Promise<void> {
    return Promise.try(() => {
      checkAccountId(accountId);
      this.#q.purge!.run(accountId);
    });
  }
}

function registrationOf(row: Row): PushRegistration {
  return {
    device: { accountId: String(row.account_id), deviceId: String(row.device_id) },
    platform: String(row.platform) as PushPlatformName,
    token: String(row.token),
    appId: String(row.app_id),
    registeredAtMs: Number(row.registered_at),
    lastDeliveredAtMs: Number(row.last_delivered_at),
  };
}
