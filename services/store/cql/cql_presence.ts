/**
 * PresenceStore on ScyllaDB/Cassandra (migrations/0007_presence.cql): one row per account for
 * the state, one partition per owner for the grants (clustered by hash, so pages are ranges).
 * Activity is written without reading back first: a heartbeat is one read and one write.
 * The grant count check is not atomic across concurrent GrantPresence calls of one owner; the
 * bound can be passed by at most one batch (100), which the limit tolerates.
 */
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
import type { CqlRow, CqlSession } from "./cql_session.ts";
import { toBuffer } from "./cql_auth_support.ts";
import { toHex } from "../../../crypto/primitives.ts";

function statements(ks: string) {
  return {
    states: `SELECT * FROM ${ks}.presence_states WHERE account_id IN ?`,
    state: `SELECT * FROM ${ks}.presence_states WHERE account_id = ?`,
    setStatus: `UPDATE ${ks}.presence_states SET status = ?, custom_text = ? WHERE account_id = ?`,
    touch: `UPDATE ${ks}.presence_states SET last_active = ? WHERE account_id = ?`,
    count: `SELECT count(*) AS n FROM ${ks}.presence_grants WHERE owner_id = ?`,
    existing: `SELECT grant_hash FROM ${ks}.presence_grants WHERE owner_id = ?
      AND grant_hash IN ?`,
    grant: `UPDATE ${ks}.presence_grants SET level = ?, created_at = ?
      WHERE owner_id = ? AND grant_hash = ?`,
    level: `SELECT level FROM ${ks}.presence_grants WHERE owner_id = ? AND grant_hash = ?`,
    remove: `DELETE FROM ${ks}.presence_grants WHERE owner_id = ? AND grant_hash IN ?`,
    hashes: `SELECT grant_hash FROM ${ks}.presence_grants WHERE owner_id = ?`,
    removeAll: `DELETE FROM ${ks}.presence_grants WHERE owner_id = ?`,
    list: `SELECT * FROM ${ks}.presence_grants WHERE owner_id = ? AND grant_hash > ? LIMIT ?`,
    purgeState: `DELETE FROM ${ks}.presence_states WHERE account_id = ?`,
  };
}

export class CqlPresence implements PresenceStore {
  readonly #s: CqlSession;
  readonly #q: ReturnType<typeof statements>;

  constructor(session: CqlSession, keyspace: string) {
    this.#s = session;
    this.#q = statements(keyspace);
  }

  async states(accountIds: readonly string[]): Promise<Map<string, PresenceState>> {
    checkAccountIds(accountIds);
    const found = new Map<string, PresenceState>();
    const ids = [...new Set(accountIds)];
    if (ids.length === 0) return found;
    for (const row of (await this.#s.execute(this.#q.states, [ids])).rows) {
      const state = stateOf(row);
      found.set(state.accountId, state);
    }
    return found;
  }

  async setStatus(
    accountId: string,
    status: ChosenStatus,
    customText: string,
  ): Promise<PresenceState | undefined> {
    checkAccountId(accountId);
    checkStatus(status, customText);
    const before = await this.#state(accountId);
    await this.#s.execute(this.#q.setStatus, [status, customText, accountId]);
    return before;
  }

  async touch(accountId: string, atMs: number): Promise<PresenceState | undefined> {
    checkAccountId(accountId);
    checkTime(atMs);
    const before = await this.#state(accountId);
    // Never move activity back (a late heartbeat from a slow instance).
    if (!before || before.lastActiveMs < atMs) {
      await this.#s.execute(this.#q.touch, [BigInt(atMs), accountId]);
    }
    return before;
  }

  async grant(ownerId: string, grants: readonly PresenceGrantRecord[], max: number): Promise<void> {
    checkGrants(ownerId, grants);
    checkGrantMax(max);
    const hashes = grants.map((g) => toBuffer(g.hash));
    const [count, existing] = await Promise.all([
      this.#s.execute(this.#q.count, [ownerId]),
      this.#s.execute(this.#q.existing, [ownerId, hashes]),
    ]);
    const known = new Set(existing.rows.map((r) => toHex(bytesOf(r.grant_hash))));
    const fresh = new Set(grants.map((g) => toHex(g.hash)).filter((h) => !known.has(h)));
    if (Number(count.rows[0]?.n ?? 0) + fresh.size > max) throw grantLimitError(max);
    await this.#s.batch(grants.map((g) => ({
      query: this.#q.grant,
      params: [g.level, BigInt(g.createdAtMs), ownerId, toBuffer(g.hash)],
    })));
  }

  async grantLevels(queries: readonly GrantQuery[]): Promise<(GrantLevel | undefined)[]> {
    checkGrantQueries(queries);
    return await Promise.all(queries.map(async (q) => {
      const row = (await this.#s.execute(this.#q.level, [q.ownerId, toBuffer(q.hash)])).rows[0];
      return row ? String(row.level) as GrantLevel : undefined;
    }));
  }

  async revoke(ownerId: string, hashes: readonly Uint8Array[] | "all"): Promise<Uint8Array[]> {
    checkRevoke(ownerId, hashes);
    if (hashes === "all") {
      const all = await this.#allHashes(ownerId);
      await this.#s.execute(this.#q.removeAll, [ownerId]);
      return all;
    }
    if (hashes.length === 0) return [];
    const buffers = hashes.map(toBuffer);
    const found = (await this.#s.execute(this.#q.existing, [ownerId, buffers])).rows
      .map((r) => bytesOf(r.grant_hash));
    if (found.length > 0) {
      await this.#s.execute(this.#q.remove, [ownerId, found.map(toBuffer)]);
    }
    return found;
  }

  async listGrants(
    ownerId: string,
    after: Uint8Array,
    limit: number,
  ): Promise<PresenceGrantRecord[]> {
    checkListPage(ownerId, after, limit);
    const result = await this.#s.execute(this.#q.list, [ownerId, toBuffer(after), limit]);
    return result.rows.map((row) => ({
      hash: bytesOf(row.grant_hash),
      level: String(row.level) as GrantLevel,
      createdAtMs: Number(row.created_at),
    }));
  }

  async purgeAccount(accountId: string): Promise<void> {
    checkAccountId(accountId);
    await Promise.all([
      this.#s.execute(this.#q.purgeState, [accountId]),
      this.#s.execute(this.#q.removeAll, [accountId]),
    ]);
  }

  async #state(accountId: string): Promise<PresenceState | undefined> {
    const row = (await this.#s.execute(this.#q.state, [accountId])).rows[0];
    return row ? stateOf(row) : undefined;
  }

  async #allHashes(ownerId: string): Promise<Uint8Array[]> {
    const hashes: Uint8Array[] = [];
    let pageState: string | undefined;
    do {
      const page = await this.#s.execute(this.#q.hashes, [ownerId], {
        fetchSize: 1000,
        ...(pageState ? { pageState } : {}),
      });
      hashes.push(...page.rows.map((r) => bytesOf(r.grant_hash)));
      pageState = page.pageState;
    } while (pageState);
    return hashes;
  }
}

// A row written by touch() alone has no status yet: the account never chose one (online).
function stateOf(row: CqlRow): PresenceState {
  return {
    accountId: String(row.account_id),
    status: (row.status ?? "online") as ChosenStatus,
    customText: String(row.custom_text ?? ""),
    lastActiveMs: Number(row.last_active ?? 0),
  };
}

function bytesOf(value: unknown): Uint8Array {
  return new Uint8Array(value as Uint8Array);
}
