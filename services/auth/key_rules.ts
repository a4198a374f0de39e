/**
 * The key directory's rules, pure (no store, no network): key ids, key sizes and type bytes,
 * prekey signatures by the account identity key, MLS key packages and cipher suites, claim
 * bounds, and the bundle a claim becomes. Each check throws INVALID_ARGUMENT naming the field
 * and the limit; the handlers in key_service.ts only read, call these and store.
 */

import * as grpc from "@grpc/grpc-js";
import { type CiphersuiteName, ciphersuites } from "ts-mls";
import {
  decodePublicKey,
  ENCODED_KEM_PUBLIC_KEY_BYTES,
  ENCODED_PUBLIC_KEY_BYTES,
  KEM_KEY_TYPE_ML_KEM_1024,
  verifyPublicPrekey,
} from "../../crypto/keys.ts";
import { inspectKeyPackage } from "../../crypto/mls_inspect.ts";
import { asBytes, sha256, toHex } from "../../crypto/primitives.ts";
import type { KyberPrekey, PrekeyBundle, SignedPrekey } from "../../proto/gen/guardyn/v1/auth.ts";
import { GuardynError, invalidArgument } from "../platform/errors.ts";
import type { ClaimedBundle, OneTimePrekey } from "../store/auth_ports.ts";
import { checkBytes, REGISTRATION_ID_MAX } from "./validation.ts";

export const KEY_ID_MAX = 16_777_215;
export const SIGNATURE_BYTES = 64;
export const KEY_PACKAGE_MAX_BYTES = 16_384;
/** MLS cipher suites accepted: 1 (X25519/AES-128-GCM/Ed25519) and the X-Wing suite. */
export const SUPPORTED_CIPHER_SUITES: readonly number[] = [1, 83];
export const CLAIM_ACCOUNTS_MAX = 50;
export const CLAIM_DEVICES_MAX = 100;

export const invalidSignature = (what: string) =>
  new GuardynError(
    grpc.status.INVALID_ARGUMENT,
    "INVALID_SIGNATURE",
    `${what}: signature does not verify with the account identity key`,
  );

export function checkKeyId(keyId: number, field: string): number {
  if (!Number.isInteger(keyId) || keyId < 1 || keyId > KEY_ID_MAX) {
    throw invalidArgument(`${field} must be in 1..${KEY_ID_MAX}`);
  }
  return keyId;
}

export function checkRegistrationId(registrationId: number, field = "registration_id"): number {
  if (
    !Number.isInteger(registrationId) || registrationId < 1 || registrationId > REGISTRATION_ID_MAX
  ) {
    throw invalidArgument(`${field} must be in 1..${REGISTRATION_ID_MAX}`);
  }
  return registrationId;
}

export function checkEcPublicKey(publicKey: Uint8Array | undefined, field: string): Uint8Array {
  const key = checkBytes(publicKey, field, ENCODED_PUBLIC_KEY_BYTES, ENCODED_PUBLIC_KEY_BYTES);
  try {
    decodePublicKey(key);
  } catch (error) {
    throw invalidArgument(`${field}: ${(error as Error).message}`);
  }
  return key;
}

export function checkKemPublicKey(publicKey: Uint8Array | undefined, field: string): Uint8Array {
  const key = checkBytes(
    publicKey,
    field,
    ENCODED_KEM_PUBLIC_KEY_BYTES,
    ENCODED_KEM_PUBLIC_KEY_BYTES,
  );
  if (key[0] !== KEM_KEY_TYPE_ML_KEM_1024) {
    throw invalidArgument(`${field} must be an encoded ML-KEM-1024 key (type byte 0x0a)`);
  }
  return key;
}

export function checkUniqueIds(ids: number[], field: string) {
  if (new Set(ids).size !== ids.length) throw invalidArgument(`${field}: key ids must be unique`);
}

export function checkBatchSize(count: number, max: number, field: string) {
  if (count < 1 || count > max) throw invalidArgument(`${field}: 1..${max} keys per upload`);
}

export function checkSuite(suite: number): number {
  if (!SUPPORTED_CIPHER_SUITES.includes(suite)) {
    throw invalidArgument(`cipher_suite must be one of ${SUPPORTED_CIPHER_SUITES.join(", ")}`);
  }
  return suite;
}

/** A signed prekey (EC or KEM) checked for shape and signed by `identityKey`. */
export async function checkSignedPrekey(
  identityKey: Uint8Array,
  prekey: SignedPrekey | KyberPrekey | undefined,
  kind: "ec" | "kem",
  field: string,
): Promise<OneTimePrekey & { signature: Uint8Array }> {
  if (!prekey) throw invalidArgument(`${field} is required`);
  const keyId = checkKeyId(prekey.keyId, `${field}.key_id`);
  const publicKey = kind === "ec"
    ? checkEcPublicKey(prekey.publicKey, `${field}.public_key`)
    : checkKemPublicKey(prekey.publicKey, `${field}.public_key`);
  const signature = checkBytes(
    prekey.signature,
    `${field}.signature`,
    SIGNATURE_BYTES,
    SIGNATURE_BYTES,
  );
  const signed = { id: keyId, publicKey: asBytes(publicKey), signature: asBytes(signature) };
  if (!await verifyPublicPrekey(identityKey, signed)) throw invalidSignature(field);
  return { keyId, publicKey, signature };
}

/** One-time EC prekeys of an upload: count, ids, keys. */
export function checkOneTimePrekeys(
  prekeys: readonly { keyId: number; publicKey: Uint8Array }[],
  maxPerUpload: number,
): OneTimePrekey[] {
  checkBatchSize(prekeys.length, maxPerUpload, "prekeys");
  const checked = prekeys.map((prekey, i) => ({
    keyId: checkKeyId(prekey.keyId, `prekeys[${i}].key_id`),
    publicKey: checkEcPublicKey(prekey.publicKey, `prekeys[${i}].public_key`),
  }));
  checkUniqueIds(checked.map((p) => p.keyId), "prekeys");
  return checked;
}

export interface CheckedKeyPackage {
  /** SHA-256 of the encoded package, hex: its reference. */
  ref: string;
  data: Uint8Array;
}

/**
 * An MLS KeyPackage of the calling device: bounded, parseable, of the request's suite, and
 * naming the device in its credential ("account:device").
 */
export function checkKeyPackage(
  data: Uint8Array,
  field: string,
  suite: number,
  expectedIdentity: string,
): CheckedKeyPackage {
  checkBytes(data, field, 1, KEY_PACKAGE_MAX_BYTES);
  let info;
  try {
    info = inspectKeyPackage(data);
  } catch (error) {
    throw invalidArgument(`${field} is not an MLS KeyPackage: ${(error as Error).message}`);
  }
  const packageSuite = ciphersuites[info.cipherSuite as CiphersuiteName];
  if (packageSuite !== suite) {
    throw invalidArgument(`${field} uses cipher suite ${info.cipherSuite}, not ${suite}`);
  }
  if (info.identity !== expectedIdentity) {
    throw invalidArgument(`${field}: credential identity must be "${expectedIdentity}"`);
  }
  return { ref: toHex(sha256(data)), data };
}

/** The packages of an upload, distinct, and at most `maxPerUpload`. */
export function checkKeyPackages(
  packages: readonly Uint8Array[],
  maxPerUpload: number,
  suite: number,
  expectedIdentity: string,
): CheckedKeyPackage[] {
  if (packages.length > maxPerUpload) {
    throw invalidArgument(`key_packages: at most ${maxPerUpload} per upload`);
  }
  const checked = packages.map((data, i) =>
    checkKeyPackage(data, `key_packages[${i}]`, suite, expectedIdentity)
  );
  if (new Set(checked.map((p) => p.ref)).size !== checked.length) {
    throw invalidArgument("key_packages must be distinct");
  }
  return checked;
}

/** A claim names 1..150 targets: at most 50 accounts and 100 devices. */
export function checkClaimCounts(accounts: number, devices: number) {
  if (accounts > CLAIM_ACCOUNTS_MAX) {
    throw invalidArgument(`account_ids: at most ${CLAIM_ACCOUNTS_MAX}`);
  }
  if (devices > CLAIM_DEVICES_MAX) throw invalidArgument(`devices: at most ${CLAIM_DEVICES_MAX}`);
  if (accounts + devices === 0) throw invalidArgument("name at least one account or device");
}

/** The bundle a device's claimed keys become on the wire. */
export function bundleOf(
  device: { id: string; registrationId: number },
  claimed: ClaimedBundle,
): PrekeyBundle {
  return {
    deviceId: device.id,
    registrationId: device.registrationId,
    signedPrekey: claimed.signedPrekey && {
      keyId: claimed.signedPrekey.keyId,
      publicKey: claimed.signedPrekey.publicKey,
      signature: claimed.signedPrekey.signature,
    },
    oneTimePrekey: claimed.oneTimePrekey && {
      keyId: claimed.oneTimePrekey.keyId,
      publicKey: claimed.oneTimePrekey.publicKey,
    },
    kyberPrekey: claimed.kemPrekey && {
      keyId: claimed.kemPrekey.keyId,
      publicKey: claimed.kemPrekey.publicKey,
      signature: claimed.kemPrekey.signature ?? new Uint8Array(),
    },
    kyberPrekeyLastResort: claimed.kemPrekey?.lastResort ?? false,
    oneTimePrekeysExhausted: !claimed.oneTimePrekey || (claimed.kemPrekey?.lastResort ?? true),
  };
}
