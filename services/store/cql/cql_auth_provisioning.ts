/**
 * ProvisioningStore on CQL. A session is one partition, written USING TTL so abandoned
 * sessions vanish by themselves. Filling and consuming are set-once decisions, each one
 * lightweight transaction carrying a token: `IF filled_by = null AND expires_at > now` and
 * `IF consumed_by = null AND filled_by != null AND expires_at > now`. An hourly expiry index
 * lets purgeExpired find sessions that expired but whose TTL has not run out yet.
 */
import type { ProvisioningSession, ProvisioningStore } from "../auth_ports.ts";
import {
  checkId,
  checkMs,
  checkPurgeLimit,
  validateFill,
  validateProvisioning,
} from "../auth_rules.ts";
import { decideOne, newToken, toBuffer, toBytes } from "./cql_auth_support.ts";
import type { CqlRow, CqlSession } from "./cql_session.ts";

const HOUR_MS = 3600_000;
/** Sessions outlive their expiry by this much (clock skew), then their TTL removes them. */
const SESSION_GRACE_S = 60;
/** Expiry index entries outlive their session, so purgeExpired still finds them. */
const INDEX_GRACE_S = 3600;
/** Hours purgeExpired looks back: older sessions are already gone by TTL. */
const PURGE_LOOKBACK_HOURS = 2;

function statements(ks: string) {
  const columns =
    "session_id, wait_secret_hash, expires_at, sealed_blob, account_id, link_token_hash";
  return {
    insert: `INSERT INTO ${ks}.provisioning_sessions (session_id, wait_secret_hash, expires_at)
      VALUES (?, ?, ?) USING TTL ?`,
    insertExpiry: `INSERT INTO ${ks}.provisioning_expiry (hour, expires_at, session_id)
      VALUES (?, ?, ?) USING TTL ?`,
    get: `SELECT ${columns}, filled_by, consumed_by FROM ${ks}.provisioning_sessions
      WHERE session_id = ?`,
    fill: `UPDATE ${ks}.provisioning_sessions USING TTL ? SET sealed_blob = ?, account_id = ?,
      link_token_hash = ?, filled_by = ? WHERE session_id = ?
      IF filled_by = null AND expires_at > ?`,
    consume: `UPDATE ${ks}.provisioning_sessions USING TTL ? SET consumed_by = ?
      WHERE session_id = ? IF consumed_by = null AND filled_by != null AND expires_at > ?`,
    delete: `DELETE FROM ${ks}.provisioning_sessions WHERE session_id = ?`,
    expired: `SELECT expires_at, session_id FROM ${ks}.provisioning_expiry
      WHERE hour = ? AND expires_at <= ? LIMIT ?`,
    deleteExpiry: `DELETE FROM ${ks}.provisioning_expiry
      WHERE hour = ? AND expires_at = ? AND session_id = ?`,
  };
}

function sessionTtl(expiresAtMs: number, nowMs: number): number {
  return Math.max(1, Math.ceil((expiresAtMs - nowMs) / 1000)) + SESSION_GRACE_S;
}

const hourOf = (ms: number) => BigInt(Math.floor(ms / HOUR_MS));

export class CqlProvisioning implements ProvisioningStore {
  readonly #s: CqlSession;
  readonly #q: ReturnType<typeof statements>;
  readonly #clock: () => number;

  constructor(session: CqlSession, keyspace: string, clock: () => number = Date.now) {
    this.#s = session;
    this.#q = statements(keyspace);
    this.#clock = clock;
  }

  async create(session: ProvisioningSession): Promise<void> {
    const now = this.#clock();
    validateProvisioning(session, now);
    const ttl = sessionTtl(session.expiresAtMs, now);
    const expiresAt = BigInt(session.expiresAtMs);
    await this.#s.execute(this.#q.insertExpiry, [
      hourOf(session.expiresAtMs),
      expiresAt,
      session.id,
      ttl + INDEX_GRACE_S,
    ]);
    await this.#s.execute(this.#q.insert, [
      session.id,
      toBuffer(session.waitSecretHash),
      expiresAt,
      ttl,
    ]);
  }

  async get(id: string, nowMs: number): Promise<ProvisioningSession | undefined> {
    checkId(id, "id");
    checkMs(nowMs, "nowMs");
    return sessionFromRow(await this.#row(id), nowMs);
  }

  async fill(
    id: string,
    fill: { sealedBlob: Uint8Array; accountId: string; linkTokenHash: Uint8Array },
    nowMs: number,
  ): Promise<boolean> {
    checkId(id, "id");
    validateFill(fill);
    checkMs(nowMs, "nowMs");
    const session = sessionFromRow(await this.#row(id), nowMs);
    if (!session || session.sealedBlob) return false;
    const token = newToken();
    const decision = await decideOne(this.#s, "filling a provisioning session", this.#q.fill, [
      sessionTtl(session.expiresAtMs, this.#clock()),
      toBuffer(fill.sealedBlob),
      fill.accountId,
      toBuffer(fill.linkTokenHash),
      token,
      id,
      BigInt(nowMs),
    ], (row: CqlRow) => row.filled_by === token);
    return decision.won;
  }

  async consume(id: string, nowMs: number): Promise<ProvisioningSession | undefined> {
    checkId(id, "id");
    checkMs(nowMs, "nowMs");
    // Read first: once filled, a session's contents never change, so this is what we consume.
    const session = sessionFromRow(await this.#row(id), nowMs);
    if (!session?.sealedBlob) return undefined;
    const token = newToken();
    const decision = await decideOne(
      this.#s,
      "consuming a provisioning session",
      this.#q.consume,
      [sessionTtl(session.expiresAtMs, this.#clock()), token, id, BigInt(nowMs)],
      (row: CqlRow) => row.consumed_by === token,
    );
    if (!decision.won) return undefined;
    await this.#s.execute(this.#q.delete, [id]);
    return session;
  }

  async purgeExpired(nowMs: number, limit: number): Promise<number> {
    checkMs(nowMs, "nowMs");
    checkPurgeLimit(limit);
    let purged = 0;
    const last = hourOf(nowMs);
    for (let hour = last - BigInt(PURGE_LOOKBACK_HOURS); hour <= last && purged < limit; hour++) {
      const due = await this.#s.execute(this.#q.expired, [hour, BigInt(nowMs), limit - purged]);
      for (const row of due.rows) {
        await this.#s.execute(this.#q.delete, [row.session_id]);
        await this.#s.execute(this.#q.deleteExpiry, [hour, row.expires_at, row.session_id]);
        purged++;
      }
    }
    return purged;
  }

  async #row(id: string): Promise<CqlRow | undefined> {
    return (await this.#s.execute(this.#q.get, [id])).rows[0];
  }
}

/** The session if it is live: present, unexpired and not consumed. */
function sessionFromRow(row: CqlRow | undefined, nowMs: number): ProvisioningSession | undefined {
  if (!row || row.expires_at == null || row.consumed_by != null) return undefined;
  if (Number(row.expires_at) <= nowMs) return undefined;
  const sealedBlob = toBytes(row.sealed_blob);
  const linkTokenHash = toBytes(row.link_token_hash);
  return {
    id: String(row.session_id),
    waitSecretHash: toBytes(row.wait_secret_hash)!,
    expiresAtMs: Number(row.expires_at),
    ...(sealedBlob ? { sealedBlob } : {}),
    ...(row.account_id != null ? { accountId: String(row.account_id) } : {}),
    ...(linkTokenHash ? { linkTokenHash } : {}),
  };
}
