/**
 * Pure rules of the auth storage ports shared by every adapter: input limits with clear
 * errors, the names of per-device key stocks and slots, and the username search buckets.
 * No I/O here, so both adapters accept and refuse exactly the same input.
 */
import type {
  Account,
  Device,
  KeyPackage,
  OneTimeKind,
  OneTimePrekey,
  ProvisioningSession,
  RefreshTokenRecord,
  SignedPrekey,
} from "./auth_ports.ts";
import { StoreInputError } from "./errors.ts";
import type { DeviceRef } from "./ports.ts";

/** Characters of an account id, device id, family id or provisioning session id. */
export const AUTH_ID_MAX_CHARS = 128;
/** Characters of a canonical username (the service allows 3..32; this is the store's cap). */
export const USERNAME_MAX_CHARS = 64;
export const PASSWORD_HASH_MAX_CHARS = 512;
export const DEVICE_NAME_MAX_CHARS = 64;
/** Highest device cap a caller may ask for (MAX_DEVICES_PER_ACCOUNT is at most 100). */
export const DEVICES_PER_ACCOUNT_MAX = 100;
export const SEARCH_LIMIT_MAX = 100;
export const IDENTITY_KEY_BYTES = 33;
/** EC keys are 33 bytes, Kyber keys 1569; room for a larger KEM without a schema change. */
export const PUBLIC_KEY_MAX_BYTES = 2048;
export const SIGNATURE_MAX_BYTES = 128;
export const KEY_ID_MAX = 0xffff_ffff;
/** Highest per-device stock a caller may ask for (MAX_ONE_TIME_PREKEYS_PER_DEVICE ≤ 10000). */
export const STOCK_MAX_TOTAL = 10_000;
/** Keys or key packages in one upload call (MAX_KEYS_PER_UPLOAD ≤ 1000). */
export const UPLOAD_MAX_ITEMS = 1_000;
export const KEY_PACKAGE_MAX_BYTES = 64 * 1024;
export const KEY_PACKAGE_REF_MAX_CHARS = 128;
export const CIPHER_SUITE_MAX = 0xffff;
export const HASH_BYTES = 32;
/** Longest refresh token lifetime (REFRESH_TOKEN_TTL_SECONDS is at most 365 days). */
export const REFRESH_LIFETIME_MAX_MS = 400 * 24 * 3600 * 1000;
/** Longest provisioning session lifetime; sessions are meant to last minutes. */
export const PROVISIONING_LIFETIME_MAX_MS = 24 * 3600 * 1000;
export const SEALED_BLOB_MAX_BYTES = 64 * 1024;
export const PROVISIONING_PURGE_MAX = 10_000;

const INT32_MAX = 0x7fff_ffff;
// deno-lint-ignore no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
/** Printable ASCII without space or upper case: a superset of the service's [a-z0-9_]. */
const USERNAME_CHARS = /^[\u0021-\u0040\u005b-\u007e]+$/;
/** Sorts after every username character, so prefix + it bounds a prefix range. */
export const USERNAME_RANGE_END = "\u007f";
/** Every character a username may start its second position with, in sort order. */
export const USERNAME_ALPHABET = Array.from(
  { length: 0x7e - 0x21 + 1 },
  (_, i) => String.fromCharCode(0x21 + i),
).filter((c) => USERNAME_CHARS.test(c));

function fail(message: string): never {
  throw new StoreInputError(message);
}

export function checkId(value: unknown, what: string): asserts value is string {
  if (typeof value !== "string" || value.length === 0) fail(`${what} must be a non-empty string`);
  if (value.length > AUTH_ID_MAX_CHARS) {
    fail(`${what} is ${value.length} characters, above the ${AUTH_ID_MAX_CHARS} limit`);
  }
  if (CONTROL_CHARS.test(value)) fail(`${what} contains control characters`);
}

export function checkDeviceRef(ref: DeviceRef, what = "device"): void {
  if (typeof ref !== "object" || ref === null) fail(`${what} must be a device reference`);
  checkId(ref.accountId, `${what}.accountId`);
  checkId(ref.deviceId, `${what}.deviceId`);
}

export function checkMs(value: unknown, what: string): asserts value is number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    fail(`${what} must be a non-negative integer of milliseconds, got ${String(value)}`);
  }
}

function checkInt(value: unknown, what: string, min: number, max: number): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    fail(`${what} must be an integer in ${min}..${max}, got ${String(value)}`);
  }
}

function checkBytes(value: unknown, what: string, min: number, max: number): void {
  if (!(value instanceof Uint8Array)) fail(`${what} must be bytes`);
  if (value.byteLength < min || value.byteLength > max) {
    const range = min === max ? `${min}` : `${min}..${max}`;
    fail(`${what} is ${value.byteLength} bytes; it must be ${range} bytes`);
  }
}

function checkText(value: unknown, what: string, max: number): asserts value is string {
  if (typeof value !== "string" || value.length === 0) fail(`${what} must be a non-empty string`);
  if (value.length > max) fail(`${what} is ${value.length} characters, above the ${max} limit`);
  if (CONTROL_CHARS.test(value)) fail(`${what} contains control characters`);
}

export function checkUsername(value: unknown, what = "username"): asserts value is string {
  checkText(value, what, USERNAME_MAX_CHARS);
  if (!USERNAME_CHARS.test(value)) {
    fail(`${what} must be canonical: lowercase printable ASCII without spaces`);
  }
}

export function validateAccount(account: Account): void {
  checkId(account.id, "account.id");
  checkUsername(account.username, "account.username");
  checkPasswordHash(account.passwordHash);
  checkMs(account.createdAtMs, "account.createdAtMs");
  if (account.identityKey !== undefined) checkIdentityKey(account.identityKey);
  if (account.identityKeyChangedAtMs !== undefined) {
    checkMs(account.identityKeyChangedAtMs, "account.identityKeyChangedAtMs");
  }
}

export function checkPasswordHash(value: unknown): void {
  checkText(value, "passwordHash", PASSWORD_HASH_MAX_CHARS);
}

export function checkIdentityKey(value: unknown): void {
  checkBytes(value, "identityKey", IDENTITY_KEY_BYTES, IDENTITY_KEY_BYTES);
}

export function validateSearch(prefix: string, afterUsername: string, limit: number): void {
  if (typeof prefix !== "string" || prefix.length === 0) {
    fail("search prefix must be a non-empty string");
  }
  checkUsername(prefix, "search prefix");
  if (afterUsername !== "") checkUsername(afterUsername, "afterUsername");
  checkInt(limit, "search limit", 1, SEARCH_LIMIT_MAX);
}

/**
 * Where a prefix search starts: after the cursor when the cursor lies in or past the prefix
 * range, else at the prefix itself (inclusive). `end` is exclusive.
 */
export function searchRange(prefix: string, afterUsername: string) {
  const end = prefix + USERNAME_RANGE_END;
  return afterUsername >= prefix
    ? { from: afterUsername, inclusive: false, end }
    : { from: prefix, inclusive: true, end };
}

/**
 * Usernames are grouped for search by their first two characters (a one-character username
 * is its own group), so a search of 2+ characters reads one group and never scans everything.
 */
export function usernameBucket(username: string): string {
  return username.slice(0, 2);
}

/** The groups a prefix search reads, in username order. */
export function searchBuckets(prefix: string): string[] {
  if (prefix.length >= 2) return [usernameBucket(prefix)];
  return [prefix, ...USERNAME_ALPHABET.map((c) => prefix + c)];
}

export function validateDevice(device: Device): void {
  checkId(device.accountId, "device.accountId");
  checkId(device.id, "device.id");
  checkDeviceName(device.name);
  checkInt(device.platform, "device.platform", 0, INT32_MAX);
  checkInt(device.registrationId, "device.registrationId", 0, INT32_MAX);
  checkMs(device.createdAtMs, "device.createdAtMs");
  checkMs(device.lastSeenAtMs, "device.lastSeenAtMs");
}

export function checkDeviceName(name: unknown): void {
  checkText(name, "device name", DEVICE_NAME_MAX_CHARS);
}

export function validateReinstall(
  update: { registrationId: number; name: string; platform: number },
) {
  checkDeviceName(update.name);
  checkInt(update.platform, "platform", 0, INT32_MAX);
  checkInt(update.registrationId, "registrationId", 0, INT32_MAX);
}

export function checkMaxDevices(maxDevices: number): void {
  checkInt(maxDevices, "maxDevices", 1, DEVICES_PER_ACCOUNT_MAX);
}

export function validateRefreshRecord(record: RefreshTokenRecord, what = "refresh token"): void {
  checkBytes(record.tokenHash, `${what}.tokenHash`, HASH_BYTES, HASH_BYTES);
  checkId(record.familyId, `${what}.familyId`);
  checkId(record.accountId, `${what}.accountId`);
  checkId(record.deviceId, `${what}.deviceId`);
  checkMs(record.expiresAtMs, `${what}.expiresAtMs`);
}

/** Refresh rows carry their lifetime as a TTL on CQL, so it is checked against the clock. */
export function checkRefreshLifetime(record: NextToken, nowMs: number): void {
  if (record.expiresAtMs - nowMs > REFRESH_LIFETIME_MAX_MS) {
    fail(`refresh token lifetime is above the ${REFRESH_LIFETIME_MAX_MS} ms limit`);
  }
}

export function checkTokenHash(hash: unknown): void {
  checkBytes(hash, "tokenHash", HASH_BYTES, HASH_BYTES);
}

export type RotateState =
  | { kind: "unknown" }
  | { kind: "reused" }
  | { kind: "expired" }
  | { kind: "rotatable" };

/**
 * The rotation decision for a stored token, before the atomic step: a revoked family or a
 * token used before means theft is suspected; an expired token is only expired.
 */
export function rotateState(
  stored: { expiresAtMs: number; used: boolean; revoked: boolean } | undefined,
  nowMs: number,
): RotateState {
  if (!stored) return { kind: "unknown" };
  if (stored.revoked) return { kind: "reused" };
  if (stored.expiresAtMs <= nowMs) return { kind: "expired" };
  if (stored.used) return { kind: "reused" };
  return { kind: "rotatable" };
}

/** What a rotation receives of the new token; the rest is inherited from the old one. */
export type NextToken = Pick<RefreshTokenRecord, "tokenHash" | "expiresAtMs">;

export function validateNextToken(next: NextToken, nowMs: number): void {
  checkBytes(next.tokenHash, "next.tokenHash", HASH_BYTES, HASH_BYTES);
  checkMs(next.expiresAtMs, "next.expiresAtMs");
  checkRefreshLifetime(next, nowMs);
}

/** The token that replaces a rotated one: same family, account and device. */
export function successor(old: RefreshTokenRecord, next: NextToken): RefreshTokenRecord {
  return {
    tokenHash: next.tokenHash,
    familyId: old.familyId,
    accountId: old.accountId,
    deviceId: old.deviceId,
    expiresAtMs: next.expiresAtMs,
  };
}

// ---- Key stocks and slots ------------------------------------------------------------------

/**
 * One-time items of a device live in named stocks ("ec", "kem", "kp.<suite>"), each claimed
 * at most once; the single-valued keys live in named slots. Both adapters use these names.
 */
export interface StockItem {
  /** Unique within its stock: a zero-padded key id (sorts numerically) or a key package ref. */
  itemId: string;
  data: Uint8Array;
  signature?: Uint8Array;
}

export interface SlotValue extends StockItem {
  uploadedAtMs?: number;
}

export const SLOT_SIGNED_PREKEY = "signed";
export const SLOT_LAST_RESORT_KEM = "kem_last_resort";

export function prekeyStock(kind: OneTimeKind): string {
  if (kind !== "ec" && kind !== "kem") fail(`prekey kind must be "ec" or "kem", got ${kind}`);
  return kind;
}

export function keyPackageStock(cipherSuite: number): string {
  checkCipherSuite(cipherSuite);
  return `kp.${cipherSuite}`;
}

export function keyPackageSlot(cipherSuite: number): string {
  checkCipherSuite(cipherSuite);
  return `kp_last_resort.${cipherSuite}`;
}

function checkCipherSuite(cipherSuite: number): void {
  checkInt(cipherSuite, "cipherSuite", 1, CIPHER_SUITE_MAX);
}

export function keyIdItem(keyId: number): string {
  return String(keyId).padStart(10, "0");
}

export function prekeyItem(prekey: OneTimePrekey | SignedPrekey, what: string): StockItem {
  checkInt(prekey.keyId, `${what}.keyId`, 0, KEY_ID_MAX);
  checkBytes(prekey.publicKey, `${what}.publicKey`, 1, PUBLIC_KEY_MAX_BYTES);
  if (prekey.signature !== undefined) {
    checkBytes(prekey.signature, `${what}.signature`, 1, SIGNATURE_MAX_BYTES);
  }
  return {
    itemId: keyIdItem(prekey.keyId),
    data: prekey.publicKey,
    ...(prekey.signature ? { signature: prekey.signature } : {}),
  };
}

export function signedPrekeyItem(prekey: SignedPrekey): StockItem {
  if (!(prekey.signature instanceof Uint8Array)) fail("signedPrekey.signature must be bytes");
  return prekeyItem(prekey, "signedPrekey");
}

export function prekeyFromItem(item: StockItem): OneTimePrekey {
  return {
    keyId: Number(item.itemId),
    publicKey: item.data,
    ...(item.signature ? { signature: item.signature } : {}),
  };
}

export function signedPrekeyFromItem(item: StockItem): SignedPrekey {
  return { keyId: Number(item.itemId), publicKey: item.data, signature: item.signature! };
}

export function keyPackageItem(pkg: KeyPackage, what = "keyPackage"): StockItem {
  checkText(pkg.ref, `${what}.ref`, KEY_PACKAGE_REF_MAX_CHARS);
  checkBytes(pkg.data, `${what}.data`, 1, KEY_PACKAGE_MAX_BYTES);
  return { itemId: pkg.ref, data: pkg.data };
}

export function keyPackageFromItem(item: StockItem): KeyPackage {
  return { ref: item.itemId, data: item.data };
}

/**
 * Checks an upload to a stock and returns its items. Ids must be unique within the upload;
 * `maxTotal` is the caller's cap for the stock.
 */
export function validateUpload(items: StockItem[], maxTotal: number): StockItem[] {
  checkInt(maxTotal, "maxTotal", 1, STOCK_MAX_TOTAL);
  if (items.length > UPLOAD_MAX_ITEMS) {
    fail(`an upload has ${items.length} items, above the ${UPLOAD_MAX_ITEMS} limit`);
  }
  const seen = new Set<string>();
  for (const item of items) {
    if (seen.has(item.itemId)) fail(`id ${item.itemId} appears twice in one upload`);
    seen.add(item.itemId);
  }
  return items;
}

/** Items of an upload mapped from prekeys, each checked. */
export function prekeyItems(prekeys: OneTimePrekey[]): StockItem[] {
  if (!Array.isArray(prekeys)) fail("prekeys must be an array");
  return prekeys.map((p, i) => prekeyItem(p, `prekeys[${i}]`));
}

export function keyPackageItems(packages: KeyPackage[]): StockItem[] {
  if (!Array.isArray(packages)) fail("packages must be an array");
  return packages.map((p, i) => keyPackageItem(p, `packages[${i}]`));
}

// ---- Provisioning ---------------------------------------------------------------------------

export function validateProvisioning(session: ProvisioningSession, nowMs: number): void {
  checkId(session.id, "session.id");
  checkBytes(session.waitSecretHash, "session.waitSecretHash", HASH_BYTES, HASH_BYTES);
  checkMs(session.expiresAtMs, "session.expiresAtMs");
  if (session.expiresAtMs - nowMs > PROVISIONING_LIFETIME_MAX_MS) {
    fail(`provisioning session lifetime is above the ${PROVISIONING_LIFETIME_MAX_MS} ms limit`);
  }
  if (session.sealedBlob || session.accountId || session.linkTokenHash) {
    fail("a new provisioning session must not be filled yet");
  }
}

export function validateFill(
  fill: { sealedBlob: Uint8Array; accountId: string; linkTokenHash: Uint8Array },
): void {
  checkBytes(fill.sealedBlob, "sealedBlob", 1, SEALED_BLOB_MAX_BYTES);
  checkId(fill.accountId, "accountId");
  checkBytes(fill.linkTokenHash, "linkTokenHash", HASH_BYTES, HASH_BYTES);
}

export function checkPurgeLimit(limit: number): void {
  checkInt(limit, "purge limit", 1, PROVISIONING_PURGE_MAX);
}
