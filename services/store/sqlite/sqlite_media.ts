/** MediaStore on SQLite: records and per-account usage change together in one transaction. */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { MediaRecord, MediaStore } from "../media_ports.ts";
import { checkMediaId, validateMediaRecord } from "../media_rules.ts";
import { validatePurge } from "../mailbox_rules.ts";
import { blob, immediate, type Row } from "./sqlite_tx.ts";

export class SqliteMedia implements MediaStore {
  readonly #db: DatabaseSync;
  readonly #q: Record<string, StatementSync>;

  constructor(db: DatabaseSync) {
    this.#db = db;
    const sql = {
      usage: "SELECT bytes FROM media_usage WHERE account_id = ?",
      addUsage: `INSERT INTO media_usage VALUES (?, ?)
        ON CONFLICT DO UPDATE SET bytes = max(0, bytes + excluded.bytes)`,
      insert: "INSERT INTO media VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'uploading', ?, ?)",
      get: "SELECT * FROM media WHERE media_id = ?",
      complete: `UPDATE media SET state = 'complete', expires_at = ?
        WHERE media_id = ? AND state = 'uploading'`,
      delete: "DELETE FROM media WHERE media_id = ? RETURNING *",
      expired: "SELECT * FROM media WHERE expires_at <= ? ORDER BY expires_at LIMIT ?",
    };
    this.#q = Object.fromEntries(Object.entries(sql).map(([k, v]) => [k, db.prepare(v)]));
  }

  create(record: MediaRecord, quotaBytes: number): Promise<"created" | "quota"> {
    return Promise.try(() => {
      validateMediaRecord(record);
      return immediate(this.#db, () => {
        const used = Number(
          (this.#q.usage!.get(record.owner.accountId) as Row | undefined)?.bytes ?? 0,
        );
        if (used + record.size > quotaBytes) return "quota" as const;
        this.#q.insert!.run(
          record.mediaId,
          record.owner.accountId,
          record.owner.deviceId,
          record.size,
          record.chunkSize,
          record.sha256,
          JSON.stringify(record.granteeAccounts),
          record.granteeGroup,
          record.uploadId,
          record.createdAtMs,
          record.expiresAtMs,
        );
        this.#q.addUsage!.run(record.owner.accountId, record.size);
        return "created" as const;
      });
    });
  }

  get(mediaId: string): Promise<MediaRecord | undefined> {
    return Promise.try(() => {
      checkMediaId(mediaId);
      const row = this.#q.get!.get(mediaId) as Row | undefined;
      return row ? recordOf(row) : undefined;
    });
  }

  complete(mediaId: string, expiresAtMs: number): Promise<boolean> {
    return Promise.try(() => {
      checkMediaId(mediaId);
      return Number(this.#q.complete!.run(expiresAtMs, mediaId).changes) === 1;
    });
  }

  delete(mediaId: string): Promise<MediaRecord | undefined> {
    return Promise.try(() => {
      checkMediaId(mediaId);
      return immediate(this.#db, () => {
        const row = this.#q.delete!.get(mediaId) as Row | undefined;
        if (!row) return undefined;
        const record = recordOf(row);
        this.#q.addUsage!.run(record.owner.accountId, -record.size);
        return record;
      });
    });
  }

  usage(accountId: string): Promise<number> {
    return Promise.try(() =>
      Number((this.#q.usage!.get(accountId) as Row | undefined)?.bytes ?? 0)
    );
  }

  expired(nowMs: number, limit: number): Promise<MediaRecord[]> {
    return Promise.try(() => {
      validatePurge(nowMs, limit);
      return (this.#q.expired!.all(nowMs, limit) as Row[]).map(recordOf);
    });
  }
}

function recordOf(row: Row): MediaRecord {
  return {
    mediaId: String(row.media_id),
    owner: { accountId: String(row.owner_account), deviceId: String(row.owner_device) },
    size: Number(row.size),
    chunkSize: Number(row.chunk_size),
    sha256: blob(row.sha256)!,
    granteeAccounts: JSON.parse(String(row.grantee_accounts)),
    granteeGroup: blob(row.grantee_group) ?? new Uint8Array(0),
    uploadId: String(row.upload_id),
    state: row.state === "complete" ? "complete" : "uploading",
    createdAtMs: Number(row.created_at),
    expiresAtMs: Number(row.expires_at),
  };
}
