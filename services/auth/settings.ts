/** Limits of the auth service (services/auth), parsed from the environment. */

import type { PlatformConfig } from "../platform/config.ts";
import type { EnvReader } from "../platform/env.ts";

export interface AuthSettings {
  /** Failed logins per (username, client address), and per account for password checks. */
  loginFailuresBurst: number;
  loginFailuresPerMinute: number;
  /** Failed logins per client address, whatever the username. */
  loginAddressFailuresBurst: number;
  loginAddressFailuresPerMinute: number;
  /**
   * Failed logins per username from all addresses. When spent, addresses that have failed
   * are refused with a retry hint; an address that has not failed may still try its password.
   */
  loginUsernameFailuresBurst: number;
  loginUsernameFailuresPerMinute: number;
  /** Login attempts (failed or not) per client address. */
  loginAttemptsBurst: number;
  loginAttemptsPerMinute: number;
  /** Registrations and linking sessions per client address. */
  registrationBurst: number;
  registrationsPerMinute: number;
  /** Bundle fetches per (requester, target device). */
  prekeyFetchBurst: number;
  prekeyFetchPerMinute: number;
  /** Key packages one device may claim (group adds), burst and per minute. */
  keyPackageClaimsBurst: number;
  keyPackageClaimsPerMinute: number;
  maxOneTimePrekeysPerDevice: number;
  maxKeyPackagesPerDevice: number;
  /** Keys or key packages per upload call. */
  maxKeysPerUpload: number;
  /**
   * One-time keys (prekeys and MLS key packages, counted apart) handed out per hour: per
   * target device across all requesters, and per requesting account across all targets. Past
   * either budget a requester still gets a working bundle, without one-time keys.
   */
  oneTimeClaimsPerTargetPerHour: number;
  oneTimeClaimsPerAccountPerHour: number;
  /** Username prefix searches per account and day. */
  directorySearchesPerDay: number;
  /** Open WaitProvisioning calls per client address, per instance. */
  maxProvisioningWaitsPerAddress: number;
  /** The account-wide device limit (MAX_DEVICES_PER_ACCOUNT, shared with messaging). */
  maxDevicesPerAccount: number;
}

export function readAuthSettings(read: EnvReader, platform: PlatformConfig): AuthSettings {
  return {
    loginFailuresBurst: read.int("LOGIN_FAILURES_BURST", 5, 1, 1_000),
    loginFailuresPerMinute: read.int("LOGIN_FAILURES_PER_MINUTE", 5, 1, 10_000),
    loginAddressFailuresBurst: read.int("LOGIN_ADDRESS_FAILURES_BURST", 20, 1, 100_000),
    loginAddressFailuresPerMinute: read.int("LOGIN_ADDRESS_FAILURES_PER_MINUTE", 20, 1, 100_000),
    loginUsernameFailuresBurst: read.int("LOGIN_USERNAME_FAILURES_BURST", 20, 1, 100_000),
    loginUsernameFailuresPerMinute: read.int("LOGIN_USERNAME_FAILURES_PER_MINUTE", 20, 1, 100_000),
    loginAttemptsBurst: read.int("LOGIN_ATTEMPTS_BURST", 30, 1, 100_000),
    loginAttemptsPerMinute: read.int("LOGIN_ATTEMPTS_PER_MINUTE", 30, 1, 100_000),
    registrationBurst: read.int("REGISTRATION_BURST", 10, 1, 100_000),
    registrationsPerMinute: read.int("REGISTRATIONS_PER_MINUTE", 10, 1, 100_000),
    prekeyFetchBurst: read.int("PREKEY_FETCH_BURST", 20, 1, 10_000),
    prekeyFetchPerMinute: read.int("PREKEY_FETCH_PER_MINUTE", 60, 1, 100_000),
    keyPackageClaimsBurst: read.int("KEY_PACKAGE_CLAIMS_BURST", 1000, 1, 100_000),
    keyPackageClaimsPerMinute: read.int("KEY_PACKAGE_CLAIMS_PER_MINUTE", 1000, 1, 1_000_000),
    maxOneTimePrekeysPerDevice: read.int("MAX_ONE_TIME_PREKEYS_PER_DEVICE", 500, 10, 10_000),
    maxKeyPackagesPerDevice: read.int("MAX_KEY_PACKAGES_PER_DEVICE", 200, 10, 10_000),
    maxKeysPerUpload: read.int("MAX_KEYS_PER_UPLOAD", 100, 1, 1_000),
    oneTimeClaimsPerTargetPerHour: read.int("ONE_TIME_CLAIMS_PER_TARGET_PER_HOUR", 20, 1, 100_000),
    oneTimeClaimsPerAccountPerHour: read.int(
      "ONE_TIME_CLAIMS_PER_ACCOUNT_PER_HOUR",
      60,
      1,
      100_000,
    ),
    directorySearchesPerDay: read.int("DIRECTORY_SEARCHES_PER_DAY", 100, 1, 100_000),
    maxProvisioningWaitsPerAddress: read.int("PROVISIONING_WAITS_PER_ADDRESS", 16, 1, 10_000),
    maxDevicesPerAccount: platform.accounts.maxDevicesPerAccount,
  };
}
