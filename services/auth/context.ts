/** What the auth service's handlers share: stores, bus, tokens, limits and the clock. */

import type { Bus } from "../bus/port.ts";
import { GuardynError, resourceExhausted } from "../platform/errors.ts";
import type { Logger } from "../platform/log.ts";
import { RateLimiter } from "../platform/rate_limit.ts";
import { type AuthStores, KeyLimitError } from "../store/auth_ports.ts";
import type { SessionTokens } from "./session_tokens.ts";
import type { AuthSettings } from "./settings.ts";
import type { DeviceRef } from "../store/ports.ts";
import * as grpc from "@grpc/grpc-js";

export interface AuthLimiters {
  /** Failed password checks per account (signed-in operations that need the password). */
  loginFailuresByAccount: RateLimiter;
  /** Failed logins per (username, client address). */
  loginFailuresByUserAtAddress: RateLimiter;
  /** Failed logins per client address. */
  loginFailuresByAddress: RateLimiter;
  /** Failed logins per username, from every address. */
  loginFailuresByUsername: RateLimiter;
  /** Login attempts per client address. */
  loginAttemptsByAddress: RateLimiter;
  /** Registrations per client address. */
  registrationsByAddress: RateLimiter;
  /** Bundle fetches per (requester device, target device). */
  prekeyFetches: RateLimiter;
  /** Directory lookups per requester device. */
  lookups: RateLimiter;
  /**
   * Key packages claimed per requester device: adding devices to a large group claims one
   * per device (a 1,000-device group: 1,000); the one-time budgets bound what it costs others.
   */
  keyPackageClaims: RateLimiter;
  /** Prefix searches per account and day. */
  searchesByAccount: RateLimiter;
  /** One-time key budgets (prekeys and key packages apart): per target device, per requester. */
  oneTimeBudgets: { prekeys: OneTimeBudget; keyPackages: OneTimeBudget };
}

export interface AuthContextDeps {
  stores: AuthStores;
  bus: Bus;
  log: Logger;
  settings: AuthSettings;
  tokens: SessionTokens;
  limiters: AuthLimiters;
  /** Verified against when a username is unknown, so timing reveals nothing. */
  dummyPasswordHash: string;
  /** Drops cached device status after a revocation on this instance. */
  forgetDevice: (accountId: string, deviceId?: string) => void;
  /** Remembers a key package handed out for `device` (its SHA-256, hex) for group adds. */
  recordKeyPackageClaim?: (device: DeviceRef, ref: string) => Promise<void>;
  now: () => number;
}

export function createLimiters(auth: AuthSettings): AuthLimiters {
  const perMinute = (burst: number, perMinute: number) =>
    new RateLimiter({ burst, perSecond: perMinute / 60 });
  return {
    loginFailuresByAccount: perMinute(auth.loginFailuresBurst, auth.loginFailuresPerMinute),
    loginFailuresByUserAtAddress: perMinute(auth.loginFailuresBurst, auth.loginFailuresPerMinute),
    loginFailuresByAddress: perMinute(
      auth.loginAddressFailuresBurst,
      auth.loginAddressFailuresPerMinute,
    ),
    loginFailuresByUsername: perMinute(
      auth.loginUsernameFailuresBurst,
      auth.loginUsernameFailuresPerMinute,
    ),
    loginAttemptsByAddress: perMinute(auth.loginAttemptsBurst, auth.loginAttemptsPerMinute),
    registrationsByAddress: perMinute(auth.registrationBurst, auth.registrationsPerMinute),
    prekeyFetches: perMinute(auth.prekeyFetchBurst, auth.prekeyFetchPerMinute),
    lookups: perMinute(60, 120),
    keyPackageClaims: perMinute(auth.keyPackageClaimsBurst, auth.keyPackageClaimsPerMinute),
    oneTimeBudgets: { prekeys: oneTimeBudget(auth), keyPackages: oneTimeBudget(auth) },
    searchesByAccount: new RateLimiter({
      burst: auth.directorySearchesPerDay,
      perSecond: auth.directorySearchesPerDay / 86_400,
    }),
  };
}

/**
 * Whether a requester may have one more of a target device's one-time keys: both the target's
 * budget (across all requesters) and the requesting account's (across all targets) must allow
 * it, and both are charged together. A spent budget means a bundle without one-time keys.
 */
export class OneTimeBudget {
  constructor(readonly perTarget: RateLimiter, readonly perRequester: RateLimiter) {}

  tryTake(target: string, requesterAccount: string): boolean {
    if (!this.perTarget.allows(target) || !this.perRequester.allows(requesterAccount)) {
      return false;
    }
    return this.perTarget.tryTake(target) && this.perRequester.tryTake(requesterAccount);
  }
}

function oneTimeBudget(auth: AuthSettings): OneTimeBudget {
  const perHour = (n: number) => new RateLimiter({ burst: n, perSecond: n / 3_600 });
  return new OneTimeBudget(
    perHour(auth.oneTimeClaimsPerTargetPerHour),
    perHour(auth.oneTimeClaimsPerAccountPerHour),
  );
}

/** The calling device as a store reference. */
export const deviceOf = (auth: { accountId: string; deviceId: string }) => ({
  accountId: auth.accountId,
  deviceId: auth.deviceId,
});

/** A store's key cap as RESOURCE_EXHAUSTED / KEY_LIMIT_REACHED; other errors pass through. */
export function keyLimitReached(error: unknown): never {
  if (error instanceof KeyLimitError) throw resourceExhausted(error.message, "KEY_LIMIT_REACHED");
  throw error;
}

export const invalidCredentials = () =>
  new GuardynError(
    grpc.status.UNAUTHENTICATED,
    "INVALID_CREDENTIALS",
    "username or password is wrong",
  );
