/**
 * Storage port of the presence service: each account's chosen status and last activity, and
 * the grant hashes the owner registered (never who holds them). Every adapter passes
 * services/store/conformance/presence_suite.ts.
 */

declare module "./ports.ts" {
  interface StorePorts {
    presence: PresenceStore;
  }
}

/** The chosen status an owner sets; the effective status also depends on activity. */
export type ChosenStatus = "online" | "away" | "busy" | "invisible" | "offline";
/** What a grant shows: status and text, or also the last-seen time. */
export type GrantLevel = "online" | "last-seen";

export interface PresenceState {
  accountId: string;
  status: ChosenStatus;
  customText: string;
  /** The last heartbeat of any device of the account; 0 when never. */
  lastActiveMs: number;
}

export interface PresenceGrantRecord {
  /** SHA-256 over the capability and the watcher's account id (32 bytes). */
  hash: Uint8Array;
  level: GrantLevel;
  createdAtMs: number;
}

export interface GrantQuery {
  ownerId: string;
  hash: Uint8Array;
}

export interface PresenceStore {
  /** The states of the given accounts (at most PRESENCE_READ_MAX); absent when never set. */
  states(accountIds: readonly string[]): Promise<Map<string, PresenceState>>;
  /** Sets the chosen status and text; the activity is kept. Returns the state before. */
  setStatus(
    accountId: string,
    status: ChosenStatus,
    customText: string,
  ): Promise<PresenceState | undefined>;
  /**
   * Records activity at `atMs` (never moving it back); a new account starts "online" with no
   * text. Returns the state before.
   */
  touch(accountId: string, atMs: number): Promise<PresenceState | undefined>;
  /**
   * Registers grants of an owner (a hash registered again takes the new level). Refuses with
   * StoreInputError when the owner would hold more than `max` grants.
   */
  grant(ownerId: string, grants: readonly PresenceGrantRecord[], max: number): Promise<void>;
  /** The level of each queried grant, in query order; undefined where none. */
  grantLevels(queries: readonly GrantQuery[]): Promise<(GrantLevel | undefined)[]>;
  /** Removes the given grants, or all with `"all"`; returns the hashes that were removed. */
  revoke(ownerId: string, hashes: readonly Uint8Array[] | "all"): Promise<Uint8Array[]>;
  /** Grants in hash order after `after` (exclusive), at most `limit`. */
  listGrants(ownerId: string, after: Uint8Array, limit: number): Promise<PresenceGrantRecord[]>;
  /** Removes the account's state and grants (it was deleted). */
  purgeAccount(accountId: string): Promise<void>;
}
