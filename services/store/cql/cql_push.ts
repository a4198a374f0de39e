/**
 * PushStore on ScyllaDB/Cassandra (migrations/0006_push.cql): one partition per account, one
 * row per device. Removal for a dead token and the delivery note are conditional on the token
 * (lightweight transactions), so a registration made meanwhile is never lost or touched.
 * The column is push_token: `token` is a reserved word in CQL.
 */
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
import type { CqlRow, CqlSession } from "./cql_session.ts";

function statements(ks: string) {
  const row = "account_id = ? AND device_id = ?";
  return {
    put: `INSERT INTO ${ks}.push_registrations (account_id, device_id, platform, push_token, app_id,
      registered_at, last_delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    get: `SELECT * FROM ${ks}.push_registrations WHERE ${row}`,
    list: `SELECT * FROM ${ks}.push_registrations WHERE account_id = ? LIMIT ${PUSH_LIST_MAX}`,
    remove: `DELETE FROM ${ks}.push_registrations WHERE ${row} IF EXISTS`,
    removeToken: `DELETE FROM ${ks}.push_registrations WHERE ${row} IF push_token = ?`,
    claim: `UPDATE ${ks}.push_registrations SET last_delivered_at = ? WHERE ${row}
      IF push_token = ? AND last_delivered_at = ?`,
    purge: `DELETE FROM ${ks}.push_registrations WHERE account_id = ?`,
  };
}

export class CqlPush implements PushStore {
  readonly #s: CqlSession;
  readonly #q: ReturnType<typeof statements>;

  constructor(session: CqlSession, keyspace: string) {
    this.#s = session;
    this.#q = statements(keyspace);
  }

  async put(r: PushRegistration): Promise<void> {
    validatePushRegistration(r);
    await this.#s.execute(this.#q.put, [
      r.device.accountId,
      r.device.deviceId,
      r.platform,
      r.token,
      r.appId,
      BigInt(r.registeredAtMs),
      BigInt(r.lastDeliveredAtMs),
    ]);
  }

  async get(device: DeviceRef): Promise<PushRegistration | undefined> {
    checkDevice(device, "device");
    const row = (await this.#s.execute(this.#q.get, [device.accountId, device.deviceId])).rows[0];
    return row ? registrationOf(row) : undefined;
  }

  async list(accountId: string): Promise<PushRegistration[]> {
    checkAccountId(accountId);
    return (await this.#s.execute(this.#q.list, [accountId])).rows.map(registrationOf);
  }

  async remove(device: DeviceRef, onlyToken?: string): Promise<boolean> {
    checkDevice(device, "device");
    if (onlyToken !== undefined) checkPushToken(onlyToken);
    const result = onlyToken === undefined
      ? await this.#s.execute(this.#q.remove, [device.accountId, device.deviceId])
      : await this.#s.execute(this.#q.removeToken, [device.accountId, device.deviceId, onlyToken]);
    return result.applied;
  }

  async claim(device: DeviceRef, token: string, seenMs: number, atMs: number): Promise<boolean> {
    checkDevice(device, "device");
    checkPushToken(token);
    checkClaimTimes(seenMs, atMs);
    const result = await this.#s.execute(this.#q.claim, [
      BigInt(atMs),
      device.accountId,
      device.deviceId,
      token,
      BigInt(seenMs),
    ]);
    return result.applied;
  }

  async purgeAccount(accountId: string): Promise<void> {
    checkAccountId(accountId);
    await this.#s.execute(this.#q.purge, [accountId]);
  }
}

function registrationOf(row: CqlRow): PushRegistration {
  return {
    device: { accountId: String(row.account_id), deviceId: String(row.device_id) },
    platform: String(row.platform) as PushPlatformName,
    token: String(row.push_token),
    appId: String(row.app_id),
    registeredAtMs: Number(row.registered_at),
    lastDeliveredAtMs: Number(row.last_delivered_at ?? 0),
  };
}
