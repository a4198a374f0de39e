/**
 * Keeps the device's token pair fresh: the access token is refreshed shortly before it expires
 * (and on demand after a TOKEN_EXPIRED), one refresh at a time, and every rotated pair is handed
 * to `onRotated` (which persists it: a refresh token is single-use).
 */

import { GuardynClientError } from "./errors.ts";

export interface TokenPair {
  accessToken: string;
  accessExpiresAtMs: number;
  refreshToken: string;
  refreshExpiresAtMs: number;
  /** When this pair was received (local clock), to size the refresh margin. */
  receivedAtMs: number;
}

export interface TokenKeeperDeps {
  /** Exchanges a refresh token for a new pair (AuthService.Refresh). */
  refresh(refreshToken: string): Promise<Omit<TokenPair, "receivedAtMs">>;
  /** Called with every new pair before it is used. */
  onRotated(pair: TokenPair): Promise<void>;
  now?: () => number;
}

/** Refresh when less than a quarter of the lifetime is left, but at most a minute early. */
const MAX_MARGIN_MS = 60_000;
const MIN_MARGIN_MS = 1_000;

export function refreshMarginMs(pair: TokenPair): number {
  const lifetime = Math.max(0, pair.accessExpiresAtMs - pair.receivedAtMs);
  return Math.min(MAX_MARGIN_MS, Math.max(MIN_MARGIN_MS, Math.floor(lifetime / 4)));
}

export class TokenKeeper {
  #pair: TokenPair | undefined;
  #refreshing: Promise<TokenPair> | undefined;
  readonly #now: () => number;

  constructor(private readonly deps: TokenKeeperDeps) {
    this.#now = deps.now ?? Date.now;
  }

  get pair(): TokenPair | undefined {
    return this.#pair;
  }

  set(pair: TokenPair | undefined): void {
    this.#pair = pair;
  }

  /** A usable access token, refreshed first when it is about to expire. */
  async accessToken(): Promise<string> {
    const pair = this.#required();
    if (pair.accessExpiresAtMs - this.#now() > refreshMarginMs(pair)) return pair.accessToken;
    return (await this.#refresh()).accessToken;
  }

  /**
   * The server said `rejected` has expired: refresh unless another caller already did, and
   * return the token to retry with.
   */
  async renew(rejected: string): Promise<string> {
    const pair = this.#required();
    if (pair.accessToken !== rejected) return pair.accessToken;
    return (await this.#refresh()).accessToken;
  }

  #required(): TokenPair {
    if (!this.#pair) throw new GuardynClientError("NOT_SIGNED_IN", "this device is not signed in");
    return this.#pair;
  }

  #refresh(): Promise<TokenPair> {
    this.#refreshing ??= (async () => {
      try {
        const current = this.#required();
        if (current.refreshExpiresAtMs <= this.#now()) {
          throw new GuardynClientError("LOGIN_REQUIRED", "the session expired; log in again");
        }
        let next: Omit<TokenPair, "receivedAtMs">;
        try {
          next = await this.deps.refresh(current.refreshToken);
        } catch (error) {
          if (
            error instanceof GuardynClientError &&
            (error.code === "TOKEN_INVALID" || error.code === "TOKEN_EXPIRED")
          ) {
            throw new GuardynClientError("LOGIN_REQUIRED", "the session ended; log in again", {
              cause: error,
            });
          }
          throw error;
        }
        const pair = { ...next, receivedAtMs: this.#now() };
        await this.deps.onRotated(pair);
        this.#pair = pair;
        return pair;
      } finally {
        this.#refreshing = undefined;
      }
    })();
    return this.#refreshing;
  }
}
