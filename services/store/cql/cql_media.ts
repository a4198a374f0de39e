/**
 * MediaStore on ScyllaDB/Cassandra (migrations/0005_media.cql). Usage is a counter: a quota
 * check reads it and then adds, so uploads racing from one account may pass the quota by what
 * they declared at once (a resource limit, not a unique decision; per-device rates bound it).
 * The completion is a lightweight transaction on the state, so it happens once.
 */
import type { MediaRecord, MediaStore } from "../media_ports.ts";
import { checkMediaId, validateMediaRecord } from "../media_rules.ts";
import { validatePurge } from "../mailbox_rules.ts";
import type { CqlRow, CqlSession } from "./cql_session.ts";
import { toBuffer } from "./cql_auth_support.ts";

const DAY_MS = 86_400_000;
/** Days before today the sweeper looks at: a sweeper down longer leaves older ones behind. */
const SWEEP_DAYS = 7;

function statements(ks: string) {
  return {
    insert: `INSERT INTO ${ks}.media (media_id, owner_account, owner_device, size, chunk_size,
      sha256, grantee_accounts, grantee_group, upload_id, state, created_at, expires_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'uploading', ?, ?)`,
    get: `SELECT * FROM ${ks}.media WHERE media_id = ?`,
    complete: `UPDATE ${ks}.media SET state = 'complete', expires_at = ? WHERE media_id = ?
      IF state = 'uploading'`,
    delete: `DELETE FROM ${ks}.media WHERE media_id = ?`,
    usage: `SELECT bytes FROM ${ks}.media_usage WHERE account_id = ?`,
    addUsage: `UPDATE ${ks}.media_usage SET bytes = bytes + ? WHERE account_id = ?`,
    addExpiry: `INSERT INTO ${ks}.media_expiry (day, expires_at, media_id) VALUES (?, ?, ?)`,
    dropExpiry: `DELETE FROM ${ks}.media_expiry WHERE day = ? AND expires_at = ? AND media_id = ?`,
    due: `SELECT expires_at, media_id FROM ${ks}.media_expiry WHERE day = ? AND expires_at <= ?
      LIMIT ?`,
  };
}

export class CqlMedia implements MediaStore {
  readonly #s: CqlSession;
  readonly #q: ReturnType<typeof statements>;

  constructor(session: CqlSession, keyspace: string) {
    this.#s = session;
    this.#q = statements(keyspace);
  }

  async create(record: MediaRecord, quotaBytes: number): Promise<"created" | "quota"> {
    validateMediaRecord(record);
    if (await this.usage(record.owner.accountId) + record.size > quotaBytes) return "quota";
    await this.#s.execute(this.#q.addUsage, [BigInt(record.size), record.owner.accountId]);
    await this.#s.execute(this.#q.addExpiry, expiryKey(record.mediaId, record.expiresAtMs));
    await this.#s.execute(this.#q.insert, [
      record.mediaId,
      record.owner.accountId,
      record.owner.deviceId,
      BigInt(record.size),
      record.chunkSize,
      toBuffer(record.sha256),
      record.granteeAccounts,
      toBuffer(record.granteeGroup),
      record.uploadId,
      BigInt(record.createdAtMs),
      BigInt(record.expiresAtMs),
    ]);
    return "created";
  }

  async get(mediaId: string): Promise<MediaRecord | undefined> {
    checkMediaId(mediaId);
    const row = (await this.#s.execute(this.#q.get, [mediaId])).rows[0];
    return row ? recordOf(row) : undefined;
  }

  async complete(mediaId: string, expiresAtMs: number): Promise<boolean> {
    const record = await this.get(mediaId);
    if (!record || record.state !== "uploading") return false;
    // The new expiry entry first: a crash in between leaves an extra entry, never none.
    await this.#s.execute(this.#q.addExpiry, expiryKey(mediaId, expiresAtMs));
    const result = await this.#s.execute(this.#q.complete, [BigInt(expiresAtMs), mediaId]);
    if (!result.applied) return false;
    await this.#s.execute(this.#q.dropExpiry, expiryKey(mediaId, record.expiresAtMs));
    return true;
  }

  async delete(mediaId: string): Promise<MediaRecord | undefined> {
    const record = await this.get(mediaId);
    if (!record) return undefined;
    await this.#s.execute(this.#q.delete, [mediaId]);
    await this.#s.execute(this.#q.addUsage, [BigInt(-record.size), record.owner.accountId]);
    await this.#s.execute(this.#q.dropExpiry, expiryKey(mediaId, record.expiresAtMs));
    return record;
  }

  async usage(accountId: string): Promise<number> {
    const row = (await this.#s.execute(this.#q.usage, [accountId])).rows[0];
    return Math.max(0, Number(row?.bytes ?? 0));
  }

  async expired(nowMs: number, limit: number): Promise<MediaRecord[]> {
    validatePurge(nowMs, limit);
    const today = Math.floor(nowMs / DAY_MS);
    const out: MediaRecord[] = [];
    for (let day = today - SWEEP_DAYS; day <= today && out.length < limit; day++) {
      const due = await this.#s.execute(this.#q.due, [day, BigInt(nowMs), limit - out.length]);
      for (const row of due.rows) {
        const record = await this.get(String(row.media_id));
        // An entry left by a completion or a delete that moved on: drop it.
        if (!record || record.expiresAtMs !== Number(row.expires_at)) {
          await this.#s.execute(this.#q.dropExpiry, [day, row.expires_at, row.media_id]);
          continue;
        }
        out.push(record);
      }
    }
    return out;
  }
}

function expiryKey(mediaId: string, expiresAtMs: number) {
  return [Math.floor(expiresAtMs / DAY_MS), BigInt(expiresAtMs), mediaId];
}

function recordOf(row: CqlRow): MediaRecord {
  return {
    mediaId: String(row.media_id),
    owner: { accountId: String(row.owner_account), deviceId: String(row.owner_device) },
    size: Number(row.size),
    chunkSize: Number(row.chunk_size),
    sha256: new Uint8Array(row.sha256 as Uint8Array),
    granteeAccounts: (row.grantee_accounts ?? []) as string[],
    granteeGroup: row.grantee_group
      ? new Uint8Array(row.grantee_group as Uint8Array)
      : new Uint8Array(0),
    uploadId: String(row.upload_id),
    state: row.state === "complete" ? "complete" : "uploading",
    createdAtMs: Number(row.created_at),
    expiresAtMs: Number(row.expires_at),
  };
}
