/**
 * Token pairs for a device: a short-lived access JWT and an opaque, single-use refresh token
 * whose SHA-256 alone is stored. Every refresh rotates it; reuse revokes the whole family, and
 * access tokens name their family, so a revoked family's access tokens stop working at once
 * too. A family (one password login) lives at most `sessionMaxAgeSeconds`: its start time is
 * part of its id ("<start ms base36>_<uuid>"), so no store schema changes for it.
 */

import { base64url } from "jose";
import { sha256 } from "../../crypto/primitives.ts";
import type { AuthContext } from "../platform/auth.ts";
import { unauthenticated } from "../platform/errors.ts";
import type { TokenIssuer } from "../platform/tokens.ts";
import type { RefreshTokenRecord, RefreshTokenStore } from "../store/auth_ports.ts";

/** 32 random bytes in base64url. */
const REFRESH_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export interface TokenPair {
  accessToken: string;
  accessTokenExpiresAtMs: number;
  refreshToken: string;
  refreshTokenExpiresAtMs: number;
}

const hashToken = (token: string) => sha256(new TextEncoder().encode(token));

/** A new family id carrying its start time. */
export function newFamilyId(startedAtMs: number): string {
  return `${startedAtMs.toString(36)}_${crypto.randomUUID()}`;
}

/** When a family started; undefined for ids made before start times were recorded. */
export function familyStartedAtMs(familyId: string): number | undefined {
  const match = /^([0-9a-z]{1,11})_/.exec(familyId);
  return match ? parseInt(match[1]!, 36) : undefined;
}

export interface SessionTokenOptions {
  refreshTtlSeconds: number;
  /** A login's absolute lifetime: past it, refreshing needs the password again. */
  sessionMaxAgeSeconds: number;
  /** Called when a family is revoked here (reuse, or past its age): drop cached statuses. */
  onFamilyRevoked?: (record: RefreshTokenRecord) => void;
  now?: () => number;
}

export class SessionTokens {
  private readonly now: () => number;
  private readonly refreshTtlSeconds: number;

  constructor(
    private readonly issuer: TokenIssuer,
    private readonly store: RefreshTokenStore,
    private readonly options: SessionTokenOptions,
  ) {
    this.now = options.now ?? (() => Date.now());
    this.refreshTtlSeconds = options.refreshTtlSeconds;
  }

  /** A new token pair starting a new refresh family (a login or a newly linked device). */
  async start(auth: AuthContext): Promise<TokenPair> {
    const refreshToken = base64url.encode(crypto.getRandomValues(new Uint8Array(32)));
    const refreshTokenExpiresAtMs = this.now() + this.refreshTtlSeconds * 1000;
    const familyId = newFamilyId(this.now());
    await this.store.insert({
      tokenHash: hashToken(refreshToken),
      familyId,
      accountId: auth.accountId,
      deviceId: auth.deviceId,
      expiresAtMs: refreshTokenExpiresAtMs,
    });
    return await this.#pair({ ...auth, familyId }, refreshToken, refreshTokenExpiresAtMs);
  }

  /** Exchanges a refresh token for a new pair; reuse of a rotated token revokes the family. */
  async refresh(refreshToken: string): Promise<{ auth: AuthContext; tokens: TokenPair }> {
    if (!REFRESH_PATTERN.test(refreshToken)) {
      throw unauthenticated("TOKEN_INVALID", "refresh token is not valid");
    }
    const next = base64url.encode(crypto.getRandomValues(new Uint8Array(32)));
    const expiresAtMs = this.now() + this.refreshTtlSeconds * 1000;
    const outcome = await this.store.rotate(
      hashToken(refreshToken),
      { tokenHash: hashToken(next), expiresAtMs },
      this.now(),
    );
    if (outcome.kind === "expired") {
      throw unauthenticated("TOKEN_EXPIRED", "refresh token expired: log in again");
    }
    if (outcome.kind === "reused") this.options.onFamilyRevoked?.(outcome.record);
    if (outcome.kind !== "rotated") {
      // Reused (the family is now revoked) or unknown: one answer, so nothing leaks.
      throw unauthenticated("TOKEN_INVALID", "refresh token is not valid");
    }
    const { record } = outcome;
    const maxAgeMs = this.options.sessionMaxAgeSeconds * 1000;
    const startedAtMs = familyStartedAtMs(record.familyId);
    if (startedAtMs !== undefined && this.now() - startedAtMs >= maxAgeMs) {
      await this.store.revokeFamily(record.familyId);
      this.options.onFamilyRevoked?.(record);
      throw unauthenticated(
        "TOKEN_EXPIRED",
        "this login reached its maximum age: sign in with the password again",
      );
    }
    const auth = {
      accountId: record.accountId,
      deviceId: record.deviceId,
      familyId: record.familyId,
    };
    const endsAtMs = startedAtMs === undefined ? expiresAtMs : startedAtMs + maxAgeMs;
    return { auth, tokens: await this.#pair(auth, next, Math.min(expiresAtMs, endsAtMs)) };
  }

  async #pair(auth: AuthContext, refreshToken: string, refreshTokenExpiresAtMs: number) {
    const access = await this.issuer.issue(auth);
    return {
      accessToken: access.token,
      accessTokenExpiresAtMs: access.expiresAtMs,
      refreshToken,
      refreshTokenExpiresAtMs,
    };
  }
}
