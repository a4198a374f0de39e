/**
 * Token pairs for a device: a short-lived access JWT and an opaque, single-use refresh token
 * whose SHA-256 alone is stored. Every refresh rotates it; reuse revokes the whole family.
 */

import { base64url } from "jose";
import { sha256 } from "../../crypto/primitives.ts";
import type { AuthContext } from "../platform/auth.ts";
import { unauthenticated } from "../platform/errors.ts";
import type { TokenIssuer } from "../platform/tokens.ts";
import type { RefreshTokenStore } from "../store/auth_ports.ts";

/** 32 random bytes in base64url. */
const REFRESH_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export interface TokenPair {
  accessToken: string;
  accessTokenExpiresAtMs: number;
  refreshToken: string;
  refreshTokenExpiresAtMs: number;
}

const hashToken = (token: string) => sha256(new TextEncoder().encode(token));

export class SessionTokens {
  constructor(
    private readonly issuer: TokenIssuer,
    private readonly store: RefreshTokenStore,
    private readonly refreshTtlSeconds: number,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** A new token pair starting a new refresh family (a login or a newly linked device). */
  async start(auth: AuthContext): Promise<TokenPair> {
    const refreshToken = base64url.encode(crypto.getRandomValues(new Uint8Array(32)));
    const refreshTokenExpiresAtMs = this.now() + this.refreshTtlSeconds * 1000;
    await this.store.insert({
      tokenHash: hashToken(refreshToken),
      familyId: crypto.randomUUID(),
      accountId: auth.accountId,
      deviceId: auth.deviceId,
      expiresAtMs: refreshTokenExpiresAtMs,
    });
    return await this.#pair(auth, refreshToken, refreshTokenExpiresAtMs);
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
    if (outcome.kind !== "rotated") {
      // Reused (the family is now revoked) or unknown: one answer, so nothing leaks.
      throw unauthenticated("TOKEN_INVALID", "refresh token is not valid");
    }
    const auth = { accountId: outcome.record.accountId, deviceId: outcome.record.deviceId };
    return { auth, tokens: await this.#pair(auth, next, expiresAtMs) };
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
