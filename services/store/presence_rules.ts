/** Pure checks of presence records shared by the adapters. */
import { StoreInputError } from "./errors.ts";
import { checkAccountId } from "./push_rules.ts";
import type {
  ChosenStatus,
  GrantLevel,
  GrantQuery,
  PresenceGrantRecord,
} from "./presence_ports.ts";

export const CHOSEN_STATUSES: readonly ChosenStatus[] = [
  "online",
  "away",
  "busy",
  "invisible",
  "offline",
];
export const GRANT_LEVELS: readonly GrantLevel[] = ["online", "last-seen"];
/** Accounts one states() or grantLevels() call reads: a WatchPresence request's bound. */
export const PRESENCE_READ_MAX = 200;
/** Grants one grant() or revoke() call takes. */
export const PRESENCE_GRANT_BATCH_MAX = 100;
/** Grants one listGrants() page holds. */
export const PRESENCE_LIST_MAX = 1000;
export const CUSTOM_TEXT_MAX_CHARS = 140;
export const GRANT_HASH_BYTES = 32;
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

export function checkStatus(status: ChosenStatus, customText: string): void {
  if (!CHOSEN_STATUSES.includes(status)) {
    throw new StoreInputError(`status must be one of ${CHOSEN_STATUSES.join(", ")}`);
  }
  if (
    typeof customText !== "string" || [...customText].length > CUSTOM_TEXT_MAX_CHARS ||
    CONTROL.test(customText)
  ) {
    throw new StoreInputError(
      `custom text: at most ${CUSTOM_TEXT_MAX_CHARS} characters, no control characters`,
    );
  }
}

export function checkTime(atMs: number): void {
  if (!Number.isSafeInteger(atMs) || atMs < 0) throw new StoreInputError("invalid time");
}

export function checkGrantHash(hash: Uint8Array): void {
  if (!(hash instanceof Uint8Array) || hash.byteLength !== GRANT_HASH_BYTES) {
    throw new StoreInputError(`a grant hash has ${GRANT_HASH_BYTES} bytes`);
  }
}

export function checkGrants(ownerId: string, grants: readonly PresenceGrantRecord[]): void {
  checkAccountId(ownerId);
  if (grants.length === 0 || grants.length > PRESENCE_GRANT_BATCH_MAX) {
    throw new StoreInputError(`1..${PRESENCE_GRANT_BATCH_MAX} grants per call`);
  }
  for (const g of grants) {
    checkGrantHash(g.hash);
    if (!GRANT_LEVELS.includes(g.level)) {
      throw new StoreInputError(`level must be one of ${GRANT_LEVELS.join(", ")}`);
    }
    checkTime(g.createdAtMs);
  }
}

export function checkAccountIds(accountIds: readonly string[]): void {
  if (accountIds.length > PRESENCE_READ_MAX) {
    throw new StoreInputError(`at most ${PRESENCE_READ_MAX} accounts per read`);
  }
  for (const id of accountIds) checkAccountId(id);
}

export function checkGrantQueries(queries: readonly GrantQuery[]): void {
  if (queries.length > PRESENCE_READ_MAX) {
    throw new StoreInputError(`at most ${PRESENCE_READ_MAX} grants per read`);
  }
  for (const q of queries) {
    checkAccountId(q.ownerId);
    checkGrantHash(q.hash);
  }
}

export function checkRevoke(ownerId: string, hashes: readonly Uint8Array[] | "all"): void {
  checkAccountId(ownerId);
  if (hashes === "all") return;
  if (hashes.length > PRESENCE_GRANT_BATCH_MAX) {
    throw new StoreInputError(`at most ${PRESENCE_GRANT_BATCH_MAX} grants per revoke`);
  }
  hashes.forEach(checkGrantHash);
}

export function checkListPage(ownerId: string, after: Uint8Array, limit: number): void {
  checkAccountId(ownerId);
  if (after.byteLength !== 0) checkGrantHash(after);
  // One more than a page: the caller learns whether another page follows.
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > PRESENCE_LIST_MAX + 1) {
    throw new StoreInputError(`limit must be 1..${PRESENCE_LIST_MAX + 1}`);
  }
}

export function checkGrantMax(max: number): void {
  if (!Number.isSafeInteger(max) || max < 1) throw new StoreInputError("invalid grant maximum");
}

/** The owner would hold more grants than allowed (a limit, not malformed input). */
export class GrantLimitError extends StoreInputError {
  override name = "GrantLimitError";
}

export function grantLimitError(max: number): GrantLimitError {
  return new GrantLimitError(`an account holds at most ${max} presence grants; revoke some first`);
}
