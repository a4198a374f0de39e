/**
 * Storage ports of the auth service: accounts, devices, refresh tokens, the prekey directory,
 * MLS key packages and device-linking (provisioning) sessions.
 *
 * Every adapter passes services/store/conformance/auth_suite.ts, including the concurrency
 * cases: a username is taken once under racing registrations, and a one-time key or key
 * package is handed out at most once under concurrent claims across instances.
 */

import type { DeviceRef } from "./ports.ts";

export interface Account {
  id: string;
  /** Canonical (lowercase) username, unique. */
  username: string;
  /** Argon2id PHC string. */
  passwordHash: string;
  /** 33-byte identity public key; absent until the first device sets it. */
  identityKey?: Uint8Array;
  /** When the identity key was last set or changed. */
  identityKeyChangedAtMs?: number;
  createdAtMs: number;
}

export interface Device {
  accountId: string;
  id: string;
  /** User-chosen label, at most 64 characters. */
  name: string;
  /** Client platform enum value (guardyn.v1.Platform). */
  platform: number;
  /** Random value picked at install; a new value means the device was reinstalled. */
  registrationId: number;
  createdAtMs: number;
  lastSeenAtMs: number;
}

export class UsernameTakenError extends Error {
  constructor() {
    super("username is already taken");
    this.name = "UsernameTakenError";
  }
}

export class DeviceLimitError extends Error {
  constructor(readonly limit: number) {
    super(`an account may have at most ${limit} devices`);
    this.name = "DeviceLimitError";
  }
}

export class KeyLimitError extends Error {
  constructor(readonly limit: number, what: string) {
    super(`a device may hold at most ${limit} ${what}`);
    this.name = "KeyLimitError";
  }
}

export interface AccountStore {
  /** Creates the account; throws UsernameTakenError when the username exists (race-safe). */
  create(account: Account): Promise<void>;
  byId(accountId: string): Promise<Account | undefined>;
  byUsername(username: string): Promise<Account | undefined>;
  setPasswordHash(accountId: string, passwordHash: string): Promise<void>;
  /**
   * Sets the identity key. With `replace` false it is set only if none is set yet ("set"), or
   * reports "unchanged" for the same key and "conflict" for another key.
   */
  setIdentityKey(
    accountId: string,
    identityKey: Uint8Array,
    replace: boolean,
    atMs: number,
  ): Promise<"set" | "unchanged" | "conflict">;
  /** Usernames starting with `prefix`, after `afterUsername` (exclusive), at most `limit` (≤ 100). */
  searchByPrefix(prefix: string, afterUsername: string, limit: number): Promise<Account[]>;
  /** Deletes the account and everything it owns: devices, keys, key packages, refresh tokens. */
  delete(accountId: string): Promise<void>;
}

export interface DeviceStore {
  /** Adds a device; throws DeviceLimitError when the account already has `maxDevices`. */
  create(device: Device, maxDevices: number): Promise<void>;
  get(accountId: string, deviceId: string): Promise<Device | undefined>;
  /** All devices of an account, oldest first (bounded by the device cap). */
  list(accountId: string): Promise<Device[]>;
  rename(accountId: string, deviceId: string, name: string): Promise<boolean>;
  /** Records a reinstall (new registration id, name and platform) of an existing device. */
  reinstall(
    accountId: string,
    deviceId: string,
    update: { registrationId: number; name: string; platform: number },
  ): Promise<boolean>;
  touch(accountId: string, deviceId: string, atMs: number): Promise<void>;
  /** Removes the device with its refresh tokens, prekeys and key packages. */
  remove(accountId: string, deviceId: string): Promise<boolean>;
  /** Removes a device's prekeys and key packages (after a reinstall: they are stale). */
  clearKeys(accountId: string, deviceId: string): Promise<void>;
}

export interface RefreshTokenRecord {
  /** SHA-256 of the opaque token; the token itself is never stored. */
  tokenHash: Uint8Array;
  /** All tokens descending from one login share a family; reuse revokes the family. */
  familyId: string;
  accountId: string;
  deviceId: string;
  expiresAtMs: number;
}

export type RotateOutcome =
  /** `record` is the NEW token's record. */
  | { kind: "rotated"; record: RefreshTokenRecord }
  /** The old token was already used: the family is revoked (theft suspected). */
  | { kind: "reused"; record: RefreshTokenRecord }
  | { kind: "unknown" }
  | { kind: "expired" };

export interface RefreshTokenStore {
  insert(record: RefreshTokenRecord): Promise<void>;
  /**
   * Exchanges `oldHash` for a new token atomically: exactly one concurrent rotation of a token
   * succeeds, and the new token inherits the old one's family, account and device (returned in
   * `record`). A second use of a rotated token revokes the whole family.
   */
  rotate(
    oldHash: Uint8Array,
    next: Pick<RefreshTokenRecord, "tokenHash" | "expiresAtMs">,
    nowMs: number,
  ): Promise<RotateOutcome>;
  revokeFamily(familyId: string): Promise<void>;
  /** True once the family was revoked (a rotated token was reused, or it was revoked). */
  familyRevoked(familyId: string): Promise<boolean>;
  revokeDevice(accountId: string, deviceId: string): Promise<void>;
}

export interface SignedPrekey {
  keyId: number;
  /** 33-byte serialized public key. */
  publicKey: Uint8Array;
  /** XEdDSA signature by the account's identity key over `publicKey`. */
  signature: Uint8Array;
}

export interface OneTimePrekey {
  keyId: number;
  publicKey: Uint8Array;
  /** Present for signed (KEM) prekeys. */
  signature?: Uint8Array;
}

export interface ClaimOptions {
  /** Hand out one-time keys (default true). */
  oneTime?: boolean;
}

export interface ClaimedBundle {
  signedPrekey?: SignedPrekey;
  /** A one-time EC prekey, removed from the store by this claim; absent when none is left. */
  oneTimePrekey?: OneTimePrekey;
  /** A one-time KEM prekey if any is left, else the last-resort KEM prekey. */
  kemPrekey?: OneTimePrekey & { lastResort: boolean };
}

export interface PrekeyCounts {
  oneTimePrekeys: number;
  kemPrekeys: number;
  /** Id of the current signed prekey, 0 when none. */
  signedPrekeyId: number;
  /** When the current signed prekey was uploaded, 0 when none. */
  signedPrekeyUploadedAtMs: number;
  hasLastResortKemPrekey: boolean;
}

export type OneTimeKind = "ec" | "kem";

export interface PrekeyStore {
  setSignedPrekey(device: DeviceRef, prekey: SignedPrekey, atMs: number): Promise<void>;
  /**
   * Adds one-time prekeys (after deleting the stored ones of that kind when `replaceExisting`);
   * ids already present are replaced. Throws KeyLimitError (changing nothing) when the device
   * would hold more than `maxTotal` of that kind. Returns how many are stored now.
   */
  addOneTime(
    device: DeviceRef,
    kind: OneTimeKind,
    prekeys: OneTimePrekey[],
    maxTotal: number,
    replaceExisting?: boolean,
  ): Promise<number>;
  setLastResortKem(device: DeviceRef, prekey: OneTimePrekey): Promise<void>;
  /**
   * Claims a bundle: each one-time key is handed out at most once, even across instances.
   * `oneTime: false` hands out no one-time key (the signed prekey and the last-resort KEM
   * prekey only): a requester past its claim budget still gets a working bundle.
   */
  claimBundle(device: DeviceRef, options?: ClaimOptions): Promise<ClaimedBundle>;
  counts(device: DeviceRef): Promise<PrekeyCounts>;
}

export interface KeyPackage {
  /** Client-chosen reference (hash of the key package), unique per device. */
  ref: string;
  /** Serialized MLS KeyPackage (opaque to the server). */
  data: Uint8Array;
}

/** Key packages are kept per device and MLS cipher suite. */
export interface KeyPackageStore {
  /**
   * Adds key packages (after deleting the stored ones when `replaceExisting`); throws
   * KeyLimitError (changing nothing) beyond `maxTotal` per device and suite. Returns the count.
   */
  add(
    device: DeviceRef,
    cipherSuite: number,
    packages: KeyPackage[],
    maxTotal: number,
    replaceExisting?: boolean,
  ): Promise<number>;
  setLastResort(device: DeviceRef, cipherSuite: number, keyPackage: KeyPackage): Promise<void>;
  /**
   * Claims one: a regular package at most once, or the last-resort one when none is left (or
   * when `oneTime: false`).
   */
  claim(
    device: DeviceRef,
    cipherSuite: number,
    options?: ClaimOptions,
  ): Promise<(KeyPackage & { lastResort: boolean }) | undefined>;
  count(device: DeviceRef, cipherSuite: number): Promise<{ count: number; hasLastResort: boolean }>;
}

export interface ProvisioningSession {
  id: string;
  /**
   * SHA-256 of the secret only the new device knows; waiting for the blob requires it, so a
   * photographed code alone does not let anyone else receive it.
   */
  waitSecretHash: Uint8Array;
  expiresAtMs: number;
  /** Set once by the old device; opaque to the server. */
  sealedBlob?: Uint8Array;
  /** Account that sent the blob (the new device joins it). */
  accountId?: string;
  /** SHA-256 of the one-time token the new device completes linking with. */
  linkTokenHash?: Uint8Array;
}

export interface ProvisioningStore {
  create(session: ProvisioningSession): Promise<void>;
  get(id: string, nowMs: number): Promise<ProvisioningSession | undefined>;
  /** Stores the sealed blob once; false when the session is missing, expired or already filled. */
  fill(
    id: string,
    fill: { sealedBlob: Uint8Array; accountId: string; linkTokenHash: Uint8Array },
    nowMs: number,
  ): Promise<boolean>;
  /** Consumes the session for linking exactly once; returns it or undefined. */
  consume(id: string, nowMs: number): Promise<ProvisioningSession | undefined>;
  purgeExpired(nowMs: number, limit: number): Promise<number>;
}

export interface AuthStores {
  accounts: AccountStore;
  devices: DeviceStore;
  refreshTokens: RefreshTokenStore;
  prekeys: PrekeyStore;
  keyPackages: KeyPackageStore;
  provisioning: ProvisioningStore;
}
