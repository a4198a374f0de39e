/**
 * AccountStore on CQL. A username is owned through its own partition in `usernames`, claimed
 * by `INSERT ... IF NOT EXISTS` (registrations of different names never contend) and released
 * by `DELETE ... IF account_id = ?`. The identity key is set once by `IF identity_key = null`.
 * Everything else is a plain write; rows that a plain write could leave behind for a deleted
 * account (no created_at) read as absent.
 */
import { type Account, type AccountStore, UsernameTakenError } from "../auth_ports.ts";
import {
  checkId,
  checkIdentityKey,
  checkMs,
  checkPasswordHash,
  checkUsername,
  searchBuckets,
  searchRange,
  USERNAME_RANGE_END,
  usernameBucket,
  validateAccount,
  validateSearch,
} from "../auth_rules.ts";
import { StoreInputError } from "../errors.ts";
import type { CqlKeyShelf } from "./cql_auth_keys.ts";
import type { CqlDevices } from "./cql_auth_devices.ts";
import { decideOne, forEachLimited, toBuffer, toBytes } from "./cql_auth_support.ts";
import type { CqlRefreshTokens } from "./cql_auth_tokens.ts";
import type { CqlRow, CqlSession } from "./cql_session.ts";
import { constantTimeEqual } from "../../../crypto/primitives.ts";

/**
 * A reservation whose account row never appeared (the registering instance died between the
 * two writes) is taken over after this long; no registration takes nearly that long.
 */
const RESERVATION_STALE_MS = 10 * 60_000;
const COLUMNS = "account_id, username, password_hash, identity_key, identity_key_changed_at, " +
  "created_at";

function statements(ks: string) {
  return {
    claim: `INSERT INTO ${ks}.usernames (username, account_id, claimed_at) VALUES (?, ?, ?)
      IF NOT EXISTS`,
    takeOver: `UPDATE ${ks}.usernames SET account_id = ?, claimed_at = ? WHERE username = ?
      IF account_id = ?`,
    release: `DELETE FROM ${ks}.usernames WHERE username = ? IF account_id = ?`,
    owner: `SELECT account_id FROM ${ks}.usernames WHERE username = ?`,
    insert: `INSERT INTO ${ks}.accounts (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`,
    byId: `SELECT ${COLUMNS} FROM ${ks}.accounts WHERE account_id = ?`,
    setPassword: `UPDATE ${ks}.accounts SET password_hash = ? WHERE account_id = ?`,
    setIdentityOnce: `UPDATE ${ks}.accounts SET identity_key = ?, identity_key_changed_at = ?
      WHERE account_id = ? IF identity_key = null AND created_at != null`,
    setIdentity: `UPDATE ${ks}.accounts SET identity_key = ?, identity_key_changed_at = ?
      WHERE account_id = ?`,
    deleteAccount: `DELETE FROM ${ks}.accounts WHERE account_id = ?`,
    insertSearch: `INSERT INTO ${ks}.username_search (bucket, username, account_id)
      VALUES (?, ?, ?)`,
    deleteSearch: `DELETE FROM ${ks}.username_search WHERE bucket = ? AND username = ?`,
    searchFrom: `SELECT username, account_id FROM ${ks}.username_search
      WHERE bucket = ? AND username >= ? AND username < ? LIMIT ?`,
    searchAfter: `SELECT username, account_id FROM ${ks}.username_search
      WHERE bucket = ? AND username > ? AND username < ? LIMIT ?`,
  };
}

export class CqlAccounts implements AccountStore {
  readonly #s: CqlSession;
  readonly #q: ReturnType<typeof statements>;
  readonly #devices: CqlDevices;
  readonly #shelf: CqlKeyShelf;
  readonly #tokens: CqlRefreshTokens;
  readonly #clock: () => number;

  constructor(
    session: CqlSession,
    keyspace: string,
    owned: { devices: CqlDevices; shelf: CqlKeyShelf; tokens: CqlRefreshTokens },
    clock: () => number = Date.now,
  ) {
    this.#s = session;
    this.#q = statements(keyspace);
    this.#devices = owned.devices;
    this.#shelf = owned.shelf;
    this.#tokens = owned.tokens;
    this.#clock = clock;
  }

  async create(account: Account): Promise<void> {
    validateAccount(account);
    await this.#claimUsername(account);
    try {
      await this.#s.execute(this.#q.insert, [
        account.id,
        account.username,
        account.passwordHash,
        account.identityKey ? toBuffer(account.identityKey) : null,
        account.identityKeyChangedAtMs === undefined
          ? null
          : BigInt(account.identityKeyChangedAtMs),
        BigInt(account.createdAtMs),
      ]);
      await this.#s.execute(this.#q.insertSearch, [
        usernameBucket(account.username),
        account.username,
        account.id,
      ]);
    } catch (error) {
      // Best effort: a reservation left behind is taken over once stale (see above).
      await this.#s.execute(this.#q.release, [account.username, account.id]).catch(() => {});
      throw error;
    }
  }

  async #claimUsername(account: Account): Promise<void> {
    const mine = (row: CqlRow) => row.account_id === account.id;
    const claim = await decideOne(this.#s, "claiming a username", this.#q.claim, [
      account.username,
      account.id,
      BigInt(this.#clock()),
    ], mine);
    if (claim.won) return;
    const holder = claim.row?.account_id;
    const claimedAt = Number(claim.row?.claimed_at ?? 0);
    if (typeof holder !== "string" || this.#clock() - claimedAt < RESERVATION_STALE_MS) {
      throw new UsernameTakenError();
    }
    if ((await this.#account(holder))?.username === account.username) {
      throw new UsernameTakenError();
    }
    const takeOver = await decideOne(this.#s, "claiming a username", this.#q.takeOver, [
      account.id,
      BigInt(this.#clock()),
      account.username,
      holder,
    ], mine);
    if (!takeOver.won) throw new UsernameTakenError();
  }

  async byId(accountId: string): Promise<Account | undefined> {
    checkId(accountId, "accountId");
    return await this.#account(accountId);
  }

  async byUsername(username: string): Promise<Account | undefined> {
    checkUsername(username);
    const owner = (await this.#s.execute(this.#q.owner, [username])).rows[0]?.account_id;
    if (typeof owner !== "string") return undefined;
    const account = await this.#account(owner);
    return account?.username === username ? account : undefined;
  }

  async setPasswordHash(accountId: string, passwordHash: string): Promise<void> {
    checkId(accountId, "accountId");
    checkPasswordHash(passwordHash);
    await this.#s.execute(this.#q.setPassword, [passwordHash, accountId]);
  }

  async setIdentityKey(
    accountId: string,
    identityKey: Uint8Array,
    replace: boolean,
    atMs: number,
  ): Promise<"set" | "unchanged" | "conflict"> {
    checkId(accountId, "accountId");
    checkIdentityKey(identityKey);
    checkMs(atMs, "atMs");
    const account = await this.#account(accountId);
    if (!account) throw new StoreInputError(`account ${accountId} does not exist`);
    const same = (key: unknown) => {
      const bytes = toBytes(key);
      return bytes !== undefined && constantTimeEqual(bytes, identityKey);
    };
    if (same(account.identityKey)) return "unchanged";
    const params = [toBuffer(identityKey), BigInt(atMs), accountId];
    if (replace) {
      await this.#s.execute(this.#q.setIdentity, params);
      return "set";
    }
    if (account.identityKey) return "conflict";
    const decision = await decideOne(
      this.#s,
      "setting the identity key",
      this.#q.setIdentityOnce,
      params,
      (row: CqlRow) => same(row.identity_key),
    );
    if (decision.won) return "set";
    if (decision.row?.created_at == null) {
      throw new StoreInputError(`account ${accountId} does not exist`);
    }
    return "conflict";
  }

  async searchByPrefix(prefix: string, afterUsername: string, limit: number): Promise<Account[]> {
    validateSearch(prefix, afterUsername, limit);
    const range = searchRange(prefix, afterUsername);
    const found: Account[] = [];
    for (const bucket of searchBuckets(prefix)) {
      if (bucket + USERNAME_RANGE_END <= range.from) continue;
      let from = range.from;
      let inclusive = range.inclusive;
      while (found.length < limit) {
        const want = limit - found.length;
        const page = await this.#s.execute(
          inclusive ? this.#q.searchFrom : this.#q.searchAfter,
          [bucket, from, range.end, want],
        );
        const accounts = await this.#accounts(page.rows);
        for (const [i, row] of page.rows.entries()) {
          // An entry whose account is gone or renamed is skipped (deletion races).
          const account = accounts[i];
          if (account && account.username === row.username) found.push(account);
        }
        if (page.rows.length < want) break;
        from = String(page.rows.at(-1)!.username);
        inclusive = false;
      }
      if (found.length >= limit) break;
    }
    return found;
  }

  /**
   * Deletes what the account owns, then its username (search entry and reservation) and last
   * its row, so a retry after a failure half-way still finds the username to release.
   */
  async delete(accountId: string): Promise<void> {
    checkId(accountId, "accountId");
    const account = await this.#account(accountId);
    const deviceIds = await this.#devices.idsOf(accountId);
    await forEachLimited(
      deviceIds,
      4,
      (deviceId) => this.#shelf.clearDevice({ accountId, deviceId }),
    );
    await this.#tokens.removeAccount(accountId);
    await this.#devices.deleteAccount(accountId);
    if (account) {
      const { username } = account;
      await this.#s.execute(this.#q.deleteSearch, [usernameBucket(username), username]);
      // Conditional, so a name already taken over by another account is left alone; either
      // outcome is final, so the answer is not needed.
      await decideOne(
        this.#s,
        "releasing a username",
        this.#q.release,
        [username, accountId],
        () => false,
      );
    }
    await this.#s.execute(this.#q.deleteAccount, [accountId]);
  }

  async #account(accountId: string): Promise<Account | undefined> {
    const row = (await this.#s.execute(this.#q.byId, [accountId])).rows[0];
    return accountFromRow(row);
  }

  /** The accounts of search entries, read in parallel (a page is at most 100 entries). */
  async #accounts(rows: CqlRow[]): Promise<(Account | undefined)[]> {
    const accounts: (Account | undefined)[] = new Array(rows.length);
    const indexes = rows.map((_, i) => i);
    await forEachLimited(indexes, 16, async (i) => {
      accounts[i] = await this.#account(String(rows[i]!.account_id));
    });
    return accounts;
  }
}

function accountFromRow(row: CqlRow | undefined): Account | undefined {
  if (!row || row.created_at == null || row.username == null) return undefined;
  const identityKey = toBytes(row.identity_key);
  return {
    id: String(row.account_id),
    username: String(row.username),
    passwordHash: String(row.password_hash),
    ...(identityKey ? { identityKey } : {}),
    ...(row.identity_key_changed_at != null
      ? { identityKeyChangedAtMs: Number(row.identity_key_changed_at) }
      : {}),
    createdAtMs: Number(row.created_at),
  };
}
