/** PresenceStore on SQLite (migration 8: presence_states, presence_grants). */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type {
  ChosenStatus,
  GrantLevel,
  GrantQuery,
  PresenceGrantRecord,
  PresenceState,
  PresenceStore,
} from "../presence_ports.ts";
import {
  checkAccountIds,
  checkGrantMax,
  checkGrantQueries,
  checkGrants,
  checkListPage,
  checkRevoke,
  checkStatus,
  checkTime,
  grantLimitError,
} from "../presence_rules.ts";
import { checkAccountId } from "../push_rules.ts";
import { immediate, type Row } from "./sqlite_tx.ts";
import { toHex } from "../../../crypto/primitives.ts";

export class SqlitePresence implements PresenceStore {
  readonly #db: DatabaseSync;
  readonly #q: Record<string, StatementSync>;

  constructor(db: DatabaseSync) {
    this.#db = db;
    const sql = {
      state: "SELECT * FROM presence_states WHERE account_id = ?",
      setStatus: `INSERT INTO presence_states VALUES (?, ?, ?, 0)
        ON CONFLICT DO UPDATE SET status = excluded.status, custom_text = excluded.custom_text`,
      touch: `INSERT INTO presence_states VALUES (?, 'online', '', ?)
        ON CONFLICT DO UPDATE SET last_active = max(last_active, excluded.last_active)`,
      count: "SELECT count(*) AS n FROM presence_grants WHERE owner_id = ?",
      exists: "SELECT 1 FROM presence_grants WHERE owner_id = ? AND grant_hash = ?",
      grant: `INSERT INTO presence_grants VALUES (?, ?, ?, ?)
        ON CONFLICT DO UPDATE SET level = excluded.level`,
      level: "SELECT level FROM presence_grants WHERE owner_id = ? AND grant_hash = ?",
      remove: "DELETE FROM presence_grants WHERE owner_id = ? AND grant_hash = ?",
      hashes: "SELECT grant_hash FROM presence_grants WHERE owner_id = ?",
      removeAll: "DELETE FROM presence_grants WHERE owner_id = ?",
      list: `SELECT * FROM presence_grants WHERE owner_id = ? AND grant_hash > ?
        ORDER BY grant_hash LIMIT ?`,
      purgeState: "DELETE FROM presence_states WHERE account_id = ?",
    };
    this.#q = Object.fromEntries(Object.entries(sql).map(([k, v]) => [k, db.prepare(v)]));
  }

  states(accountIds: readonly string[]): Promise<Map<string, PresenceState>> {
    return Promise.try(() => {
      checkAccountIds(accountIds);
      const found = new Map<string, PresenceState>();
      for (const id of new Set(accountIds)) {
        const row = this.#q.state!.get(id) as Row | undefined;
        if (row) found.set(id, stateOf(row));
      }
      return found;
    });
  }

  setStatus(
    accountId: string,
    status: ChosenStatus,
    customText: string,
  ): Promise<PresenceState | undefined> {
    return Promise.try(() => {
      checkAccountId(accountId);
      checkStatus(status, customText);
      return immediate(this.#db, () => {
        const before = this.#q.state!.get(accountId) as Row | undefined;
        this.#q.setStatus!.run(accountId, status, customText);
        return before ? stateOf(before) : undefined;
      });
    });
  }

  touch(accountId: string, atMs: number): Promise<PresenceState | undefined> {
    return Promise.try(() => {
      checkAccountId(accountId);
      checkTime(atMs);
      return immediate(this.#db, () => {
        const before = this.#q.state!.get(accountId) as Row | undefined;
        this.#q.touch!.run(accountId, atMs);
        return before ? stateOf(before) : undefined;
      });
    });
  }

  grant(ownerId: string, grants: readonly PresenceGrantRecord[], max: number): Promise<void> {
    return Promise.try(() => {
      checkGrants(ownerId, grants);
      checkGrantMax(max);
      immediate(this.#db, () => {
        const held = Number((this.#q.count!.get(ownerId) as Row).n);
        const fresh = new Set<string>();
        for (const g of grants) {
          if (!this.#q.exists!.get(ownerId, g.hash)) fresh.add(toHex(g.hash));
        }
        if (held + fresh.size > max) throw grantLimitError(max);
        for (const g of grants) this.#q.grant!.run(ownerId, g.hash, g.level, g.createdAtMs);
      });
    });
  }

  grantLevels(queries: readonly GrantQuery[]): Promise<(GrantLevel | undefined)[]> {
    return Promise.try(() => {
      checkGrantQueries(queries);
      return queries.map((q) => {
        const row = this.#q.level!.get(q.ownerId, q.hash) as Row | undefined;
        return row ? String(row.level) as GrantLevel : undefined;
      });
    });
  }

  revoke(ownerId: string, hashes: readonly Uint8Array[] | "all"): Promise<Uint8Array[]> {
    return Promise.try(() => {
      checkRevoke(ownerId, hashes);
      return immediate(this.#db, () => {
        if (hashes === "all") {
          const all = (this.#q.hashes!.all(ownerId) as Row[]).map((r) => bytesOf(r.grant_hash));
          this.#q.removeAll!.run(ownerId);
          return all;
        }
        return hashes.filter((h) => Number(this.#q.remove!.run(ownerId, h).changes) > 0);
      });
    });
  }

  listGrants(ownerId: string, after: Uint8Array, limit: number): Promise<PresenceGrantRecord[]> {
    return Promise.try(() => {
      checkListPage(ownerId, after, limit);
      return (this.#q.list!.all(ownerId, after, limit) as Row[]).map((row) => ({
        hash: bytesOf(row.grant_hash),
        level: String(row.level) as GrantLevel,
        createdAtMs: Number(row.created_at),
      }));
    });
  }

  purgeAccount(accountId: string): Promise<void> {
    return Promise.try(() => {
      checkAccountId(accountId);
      immediate(this.#db, () => {
        this.#q.purgeState!.run(accountId);
        this.#q.removeAll!.run(accountId);
      });
    });
  }
}

function stateOf(row: Row): PresenceState {
  return {
    accountId: String(row.account_id),
    status: String(row.status) as ChosenStatus,
    customText: String(row.custom_text),
    lastActiveMs: Number(row.last_active),
  };
}

function bytesOf(value: unknown): Uint8Array {
  return new Uint8Array(value as Uint8Array);
}
