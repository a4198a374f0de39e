/**
 * RefreshTokenStore and ProvisioningStore on SQLite. Every decision (rotate, fill, consume)
 * reads and writes inside one BEGIN IMMEDIATE transaction, so it happens exactly once.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type {
  ProvisioningSession,
  ProvisioningStore,
  RefreshTokenRecord,
  RefreshTokenStore,
  RotateOutcome,
} from "../auth_ports.ts";
import {
  checkId,
  checkMs,
  checkPurgeLimit,
  checkRefreshLifetime,
  checkTokenHash,
  type NextToken,
  rotateState,
  successor,
  validateFill,
  validateNextToken,
  validateProvisioning,
  validateRefreshRecord,
} from "../auth_rules.ts";
import { blob, immediate, type Row } from "./sqlite_tx.ts";

/** Expired tokens are kept this long (answering "expired"), then swept by later inserts. */
const EXPIRED_KEEP_MS = 24 * 3600 * 1000;
/** Expired rows swept per insert: bounded work that outpaces the insert rate. */
const SWEEP_PER_INSERT = 8;

export class SqliteRefreshTokens implements RefreshTokenStore {
  readonly #db: DatabaseSync;
  readonly #clock: () => number;
  readonly #insert: StatementSync;
  readonly #get: StatementSync;
  readonly #markUsed: StatementSync;
  readonly #revokeFamily: StatementSync;
  readonly #familyRevoked: StatementSync;
  readonly #revokeDevice: StatementSync;
  readonly #sweep: StatementSync;

  constructor(db: DatabaseSync, clock: () => number = Date.now) {
    this.#db = db;
    this.#clock = clock;
    this.#insert = db.prepare(
      `INSERT INTO refresh_tokens (token_hash, family_id, account_id, device_id, expires_at)
       VALUES (?, ?, ?, ?, ?)`,
    );
    this.#get = db.prepare(
      `SELECT family_id, account_id, device_id, expires_at, used, revoked
       FROM refresh_tokens WHERE token_hash = ?`,
    );
    this.#markUsed = db.prepare("UPDATE refresh_tokens SET used = 1 WHERE token_hash = ?");
    this.#revokeFamily = db.prepare("UPDATE refresh_tokens SET revoked = 1 WHERE family_id = ?");
    this.#familyRevoked = db.prepare(
      "SELECT 1 AS revoked FROM refresh_tokens WHERE family_id = ? AND revoked = 1 LIMIT 1",
    );
    this.#revokeDevice = db.prepare(
      "UPDATE refresh_tokens SET revoked = 1 WHERE account_id = ? AND device_id = ?",
    );
    this.#sweep = db.prepare(
      `DELETE FROM refresh_tokens WHERE token_hash IN
       (SELECT token_hash FROM refresh_tokens WHERE expires_at <= ? LIMIT ?)`,
    );
  }

  insert(record: RefreshTokenRecord): Promise<void> {
    return Promise.try(() => {
      validateRefreshRecord(record);
      const now = this.#clock();
      checkRefreshLifetime(record, now);
      immediate(this.#db, () => {
        this.#sweep.run(now - EXPIRED_KEEP_MS, SWEEP_PER_INSERT);
        this.#insertRecord(record);
      });
    });
  }

  rotate(oldHash: Uint8Array, next: NextToken, nowMs: number): Promise<RotateOutcome> {
    return Promise.try(() => {
      checkTokenHash(oldHash);
      checkMs(nowMs, "nowMs");
      validateNextToken(next, nowMs);
      return immediate(this.#db, (): RotateOutcome => {
        const row = this.#get.get(oldHash) as Row | undefined;
        const stored = row && {
          expiresAtMs: Number(row.expires_at),
          used: Number(row.used) === 1,
          revoked: Number(row.revoked) === 1,
        };
        const state = rotateState(stored, nowMs);
        if (state.kind === "unknown" || state.kind === "expired") return state;
        const record = recordFromRow(oldHash, row!);
        if (state.kind === "reused") {
          this.#revokeFamily.run(record.familyId);
          return { kind: "reused", record };
        }
        this.#markUsed.run(oldHash);
        const rotated = successor(record, next);
        this.#insertRecord(rotated);
        return { kind: "rotated", record: rotated };
      });
    });
  }

  familyRevoked(familyId: string): Promise<boolean> {
    return Promise.try(() => {
      checkId(familyId, "familyId");
      return this.#familyRevoked.get(familyId) !== undefined;
    });
  }

  revokeFamily(familyId: string): Promise<void> {
    return Promise.try(() => {
      checkId(familyId, "familyId");
      this.#revokeFamily.run(familyId);
    });
  }

  revokeDevice(accountId: string, deviceId: string): Promise<void> {
    return Promise.try(() => {
      checkId(accountId, "accountId");
      checkId(deviceId, "deviceId");
      this.#revokeDevice.run(accountId, deviceId);
    });
  }

  #insertRecord(record: RefreshTokenRecord): void {
    this.#insert.run(
      record.tokenHash,
      record.familyId,
      record.accountId,
      record.deviceId,
      record.expiresAtMs,
    );
  }
}

function recordFromRow(tokenHash: Uint8Array, row: Row): RefreshTokenRecord {
  return {
    tokenHash: new Uint8Array(tokenHash),
    familyId: String(row.family_id),
    accountId: String(row.account_id),
    deviceId: String(row.device_id),
    expiresAtMs: Number(row.expires_at),
  };
}

const SESSION_COLUMNS =
  "id, wait_secret_hash, expires_at, sealed_blob, account_id, link_token_hash";

export class SqliteProvisioning implements ProvisioningStore {
  readonly #db: DatabaseSync;
  readonly #clock: () => number;
  readonly #insert: StatementSync;
  readonly #get: StatementSync;
  readonly #fill: StatementSync;
  readonly #delete: StatementSync;
  readonly #purge: StatementSync;

  constructor(db: DatabaseSync, clock: () => number = Date.now) {
    this.#db = db;
    this.#clock = clock;
    this.#insert = db.prepare(
      "INSERT INTO provisioning_sessions (id, wait_secret_hash, expires_at) VALUES (?, ?, ?)",
    );
    this.#get = db.prepare(`SELECT ${SESSION_COLUMNS} FROM provisioning_sessions WHERE id = ?`);
    // The conditions make the fill set-once: a filled or expired session is left unchanged.
    this.#fill = db.prepare(
      `UPDATE provisioning_sessions SET sealed_blob = ?, account_id = ?, link_token_hash = ?
       WHERE id = ? AND sealed_blob IS NULL AND expires_at > ?`,
    );
    this.#delete = db.prepare("DELETE FROM provisioning_sessions WHERE id = ?");
    this.#purge = db.prepare(
      `DELETE FROM provisioning_sessions WHERE id IN
       (SELECT id FROM provisioning_sessions WHERE expires_at <= ? LIMIT ?)`,
    );
  }

  create(session: ProvisioningSession): Promise<void> {
    return Promise.try(() => {
      validateProvisioning(session, this.#clock());
      this.#insert.run(session.id, session.waitSecretHash, session.expiresAtMs);
    });
  }

  get(id: string, nowMs: number): Promise<ProvisioningSession | undefined> {
    return Promise.try(() => {
      checkId(id, "id");
      checkMs(nowMs, "nowMs");
      return this.#live(id, nowMs);
    });
  }

  fill(
    id: string,
    fill: { sealedBlob: Uint8Array; accountId: string; linkTokenHash: Uint8Array },
    nowMs: number,
  ): Promise<boolean> {
    return Promise.try(() => {
      checkId(id, "id");
      validateFill(fill);
      checkMs(nowMs, "nowMs");
      const { sealedBlob, accountId, linkTokenHash } = fill;
      return Number(this.#fill.run(sealedBlob, accountId, linkTokenHash, id, nowMs).changes) > 0;
    });
  }

  consume(id: string, nowMs: number): Promise<ProvisioningSession | undefined> {
    return Promise.try(() => {
      checkId(id, "id");
      checkMs(nowMs, "nowMs");
      return immediate(this.#db, () => {
        const session = this.#live(id, nowMs);
        if (!session?.sealedBlob) return undefined;
        this.#delete.run(id);
        return session;
      });
    });
  }

  purgeExpired(nowMs: number, limit: number): Promise<number> {
    return Promise.try(() => {
      checkMs(nowMs, "nowMs");
      checkPurgeLimit(limit);
      return Number(this.#purge.run(nowMs, limit).changes);
    });
  }

  #live(id: string, nowMs: number): ProvisioningSession | undefined {
    const row = this.#get.get(id) as Row | undefined;
    if (!row || Number(row.expires_at) <= nowMs) return undefined;
    return sessionFromRow(row);
  }
}

function sessionFromRow(row: Row): ProvisioningSession {
  const sealedBlob = blob(row.sealed_blob);
  const linkTokenHash = blob(row.link_token_hash);
  return {
    id: String(row.id),
    waitSecretHash: blob(row.wait_secret_hash)!,
    expiresAtMs: Number(row.expires_at),
    ...(sealedBlob ? { sealedBlob } : {}),
    ...(row.account_id !== null ? { accountId: String(row.account_id) } : {}),
    ...(linkTokenHash ? { linkTokenHash } : {}),
  };
}
