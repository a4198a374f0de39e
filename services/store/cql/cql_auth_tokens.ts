/**
 * RefreshTokenStore on CQL. A token is its own partition (by SHA-256); rotation marks it used
 * with one lightweight transaction, `UPDATE ... SET used = true, used_by = <token> IF used =
 * false`, so exactly one concurrent rotation wins. Families and the families of each device
 * are plain index tables, so revoking a family is one write and revoking a device a few.
 * Every row carries a TTL: expired tokens disappear without a sweep.
 */
import type { RefreshTokenRecord, RefreshTokenStore, RotateOutcome } from "../auth_ports.ts";
import {
  checkId,
  checkMs,
  checkRefreshLifetime,
  checkTokenHash,
  type NextToken,
  REFRESH_LIFETIME_MAX_MS,
  rotateState,
  successor,
  validateNextToken,
  validateRefreshRecord,
} from "../auth_rules.ts";
import {
  decideOne,
  forEachLimited,
  newToken,
  readAll,
  toBuffer,
  toBytes,
} from "./cql_auth_support.ts";
import type { CqlRow, CqlSession } from "./cql_session.ts";

/** Expired tokens are kept this long (answering "expired") before their TTL removes them. */
const EXPIRED_KEEP_S = 24 * 3600;
/** A revocation outlives every token of its family. */
const REVOCATION_TTL_S = Math.ceil(REFRESH_LIFETIME_MAX_MS / 1000) + EXPIRED_KEEP_S;
/** Tokens of one family: one per rotation during the family's lifetime. */
const FAMILY_TOKENS_MAX = 200_000;
/** Login families of one account still within their lifetime. */
const ACCOUNT_FAMILIES_MAX = 100_000;

function statements(ks: string) {
  return {
    insertToken: `INSERT INTO ${ks}.refresh_tokens (token_hash, family_id, account_id, device_id,
      expires_at, used) VALUES (?, ?, ?, ?, ?, false) USING TTL ?`,
    insertFamily: `INSERT INTO ${ks}.refresh_families (family_id, token_hash) VALUES (?, ?)
      USING TTL ?`,
    insertDeviceFamily: `INSERT INTO ${ks}.refresh_families_by_device (account_id, device_id,
      family_id) VALUES (?, ?, ?) USING TTL ?`,
    getToken: `SELECT family_id, account_id, device_id, expires_at, used
      FROM ${ks}.refresh_tokens WHERE token_hash = ?`,
    revoked: `SELECT revoked FROM ${ks}.refresh_families WHERE family_id = ? LIMIT 1`,
    markUsed: `UPDATE ${ks}.refresh_tokens USING TTL ? SET used = true, used_by = ?
      WHERE token_hash = ? IF used = false`,
    revoke: `UPDATE ${ks}.refresh_families USING TTL ? SET revoked = true WHERE family_id = ?`,
    familyTokens: `SELECT token_hash FROM ${ks}.refresh_families WHERE family_id = ?`,
    deleteToken: `DELETE FROM ${ks}.refresh_tokens WHERE token_hash = ?`,
    deviceFamilies: `SELECT family_id FROM ${ks}.refresh_families_by_device
      WHERE account_id = ? AND device_id = ?`,
    accountFamilies: `SELECT family_id FROM ${ks}.refresh_families_by_device
      WHERE account_id = ?`,
    deleteDeviceFamilies: `DELETE FROM ${ks}.refresh_families_by_device
      WHERE account_id = ? AND device_id = ?`,
    deleteAccountFamilies: `DELETE FROM ${ks}.refresh_families_by_device WHERE account_id = ?`,
  };
}

/** Whole seconds a token's rows live: until expiry plus the "expired" grace, at least 1. */
function tokenTtl(expiresAtMs: number, nowMs: number): number {
  return Math.max(1, Math.ceil((expiresAtMs - nowMs) / 1000)) + EXPIRED_KEEP_S;
}

export class CqlRefreshTokens implements RefreshTokenStore {
  readonly #s: CqlSession;
  readonly #q: ReturnType<typeof statements>;
  readonly #clock: () => number;

  constructor(session: CqlSession, keyspace: string, clock: () => number = Date.now) {
    this.#s = session;
    this.#q = statements(keyspace);
    this.#clock = clock;
  }

  async insert(record: RefreshTokenRecord): Promise<void> {
    validateRefreshRecord(record);
    checkRefreshLifetime(record, this.#clock());
    await this.#insert(record);
  }

  async rotate(oldHash: Uint8Array, next: NextToken, nowMs: number): Promise<RotateOutcome> {
    checkTokenHash(oldHash);
    checkMs(nowMs, "nowMs");
    validateNextToken(next, nowMs);
    const row = (await this.#s.execute(this.#q.getToken, [toBuffer(oldHash)])).rows[0];
    if (!row || row.family_id == null) return { kind: "unknown" };
    const record = recordFromRow(oldHash, row);
    const revoked = await this.#revoked(record.familyId);
    const state = rotateState(
      { expiresAtMs: record.expiresAtMs, used: row.used === true, revoked },
      nowMs,
    );
    if (state.kind === "unknown" || state.kind === "expired") return state;
    if (state.kind === "rotatable") {
      const token = newToken();
      const decision = await decideOne(
        this.#s,
        "rotating a refresh token",
        this.#q.markUsed,
        [tokenTtl(record.expiresAtMs, this.#clock()), token, toBuffer(oldHash)],
        (current: CqlRow) => current.used_by === token,
      );
      if (decision.won) {
        const rotated = successor(record, next);
        await this.#insert(rotated);
        return { kind: "rotated", record: rotated };
      }
      // Lost to a concurrent rotation of the same token: a second use, as below.
    }
    await this.revokeFamily(record.familyId);
    return { kind: "reused", record };
  }

  familyRevoked(familyId: string): Promise<boolean> {
    checkId(familyId, "familyId");
    return this.#revoked(familyId);
  }

  async revokeFamily(familyId: string): Promise<void> {
    checkId(familyId, "familyId");
    await this.#s.execute(this.#q.revoke, [REVOCATION_TTL_S, familyId]);
  }

  async revokeDevice(accountId: string, deviceId: string): Promise<void> {
    checkId(accountId, "accountId");
    checkId(deviceId, "deviceId");
    const families = await this.#families(this.#q.deviceFamilies, [accountId, deviceId]);
    await forEachLimited(families, 8, (familyId) => this.revokeFamily(familyId));
  }

  /** Revokes the device's families and deletes their tokens (the device is removed). */
  async removeDevice(accountId: string, deviceId: string): Promise<void> {
    const families = await this.#families(this.#q.deviceFamilies, [accountId, deviceId]);
    await forEachLimited(families, 8, (familyId) => this.#removeFamily(familyId));
    await this.#s.execute(this.#q.deleteDeviceFamilies, [accountId, deviceId]);
  }

  /** removeDevice for every device of the account, including ones without a device row. */
  async removeAccount(accountId: string): Promise<void> {
    const families = await this.#families(this.#q.accountFamilies, [accountId]);
    await forEachLimited(families, 8, (familyId) => this.#removeFamily(familyId));
    await this.#s.execute(this.#q.deleteAccountFamilies, [accountId]);
  }

  /** The revocation flag stays (with its own TTL) so a token missed here is still refused. */
  async #removeFamily(familyId: string): Promise<void> {
    await this.revokeFamily(familyId);
    const rows = await readAll(this.#s, this.#q.familyTokens, [familyId], FAMILY_TOKENS_MAX);
    await forEachLimited(rows, 16, async (row) => {
      await this.#s.execute(this.#q.deleteToken, [row.token_hash]);
    });
  }

  async #families(query: string, params: string[]): Promise<string[]> {
    const rows = await readAll(this.#s, query, params, ACCOUNT_FAMILIES_MAX);
    return [...new Set(rows.map((row) => String(row.family_id)))];
  }

  async #revoked(familyId: string): Promise<boolean> {
    const result = await this.#s.execute(this.#q.revoked, [familyId]);
    return result.rows[0]?.revoked === true;
  }

  /** Index entries first, then the token: a token is never unreachable by its family. */
  async #insert(record: RefreshTokenRecord): Promise<void> {
    const ttl = tokenTtl(record.expiresAtMs, this.#clock());
    const hash = toBuffer(record.tokenHash);
    await Promise.all([
      this.#s.execute(this.#q.insertFamily, [record.familyId, hash, ttl]),
      this.#s.execute(this.#q.insertDeviceFamily, [
        record.accountId,
        record.deviceId,
        record.familyId,
        ttl,
      ]),
    ]);
    await this.#s.execute(this.#q.insertToken, [
      hash,
      record.familyId,
      record.accountId,
      record.deviceId,
      BigInt(record.expiresAtMs),
      ttl,
    ]);
  }
}

function recordFromRow(tokenHash: Uint8Array, row: CqlRow): RefreshTokenRecord {
  return {
    tokenHash: toBytes(tokenHash)!,
    familyId: String(row.family_id),
    accountId: String(row.account_id),
    deviceId: String(row.device_id),
    expiresAtMs: Number(row.expires_at),
  };
}
