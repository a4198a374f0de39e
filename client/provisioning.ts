/**
 * Device linking, the cryptographic half. The new device makes an X25519 key pair and shows a
 * link code (the provisioning session id and its public key, e.g. as a QR code). A signed-in
 * device reads the code out of band and seals the account's secrets to that key; the server
 * only relays the sealed blob, so it can neither read it nor substitute its own key.
 *
 * Link code:  "gdnlink1." || session id || "." || base64url(public key)
 * Sealed blob: 0x01 || ephemeral public key (32) || nonce (12) || AES-256-GCM(JSON secrets)
 *   key = HKDF-SHA-256(X25519(ephemeral, device key), salt = zeros,
 *                      info = "Guardyn_Provisioning_v1" || 0x00 || session id || eph || device, 32)
 *   associated data = "Guardyn_Provisioning_v1" || 0x00 || session id
 * Binding the session id into both means a blob sealed for one session opens for no other.
 */

import {
  deserializeIdentityKeyPair,
  type IdentityKeyPair,
  serializeIdentityKeyPair,
} from "../crypto/mod.ts";
import {
  aesGcmDecrypt,
  aesGcmEncrypt,
  concatBytes,
  hkdfSha256,
  randomBytes,
  wipe,
  x25519,
  x25519GenerateKeyPair,
  type X25519KeyPair,
} from "../crypto/primitives.ts";
import { fromBase64Url, toBase64Url, utf8Decode, utf8Encode } from "./bytes.ts";
import { GuardynClientError } from "./errors.ts";
import { b64, bool, bytes, list, optStr, record, str } from "./records.ts";

const CODE_PREFIX = "gdnlink1";
const BLOB_VERSION = 0x01;
const INFO = utf8Encode("Guardyn_Provisioning_v1");
const SESSION_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
/** The contract's bound on a sealed blob. */
export const SEALED_BLOB_MAX_BYTES = 65_536;
/** Contacts carried to the new device (names and trusted keys), within the blob bound. */
export const LINKED_CONTACTS_MAX = 200;

export interface LinkCode {
  sessionId: string;
  publicKey: Uint8Array;
}

/** What the signed-in device hands the new one. */
export interface ProvisioningSecrets {
  accountId: string;
  username: string;
  identity: IdentityKeyPair;
  contacts: { accountId: string; username?: string; identityKey?: Uint8Array; verified: boolean }[];
}

const badCode = (why: string) => new GuardynClientError("BAD_LINK_CODE", why);

export function formatLinkCode(code: LinkCode): string {
  return `${CODE_PREFIX}.${code.sessionId}.${toBase64Url(code.publicKey)}`;
}

export function parseLinkCode(text: string): LinkCode {
  const parts = text.trim().split(".");
  if (parts.length !== 3 || parts[0] !== CODE_PREFIX) {
    throw badCode("not a Guardyn link code (it starts with gdnlink1.)");
  }
  const [, sessionId, key] = parts as [string, string, string];
  if (!SESSION_ID_PATTERN.test(sessionId)) throw badCode("the link code has a bad session id");
  let publicKey: Uint8Array;
  try {
    publicKey = fromBase64Url(key);
  } catch {
    throw badCode("the link code has a bad key");
  }
  if (publicKey.length !== KEY_BYTES) throw badCode("the link code has a bad key");
  return { sessionId, publicKey };
}

/** The new device's ephemeral key pair for one linking attempt. */
export function newLinkKeyPair(): Promise<X25519KeyPair> {
  return x25519GenerateKeyPair();
}

function context(sessionId: string): Uint8Array {
  return concatBytes(INFO, Uint8Array.of(0), utf8Encode(sessionId));
}

function deriveKey(
  shared: Uint8Array,
  sessionId: string,
  ephemeral: Uint8Array,
  device: Uint8Array,
) {
  return hkdfSha256(
    shared,
    new Uint8Array(32),
    concatBytes(context(sessionId), ephemeral, device),
    32,
  );
}

export async function sealProvisioning(
  code: LinkCode,
  secrets: ProvisioningSecrets,
): Promise<Uint8Array> {
  const payload = utf8Encode(JSON.stringify({
    accountId: secrets.accountId,
    username: secrets.username,
    identity: b64(serializeIdentityKeyPair(secrets.identity)),
    contacts: secrets.contacts.slice(0, LINKED_CONTACTS_MAX).map((c) => ({
      accountId: c.accountId,
      username: c.username ?? null,
      identityKey: c.identityKey ? b64(c.identityKey) : null,
      verified: c.verified,
    })),
  }));
  const ephemeral = await x25519GenerateKeyPair();
  let shared: Uint8Array;
  try {
    shared = await x25519(ephemeral.privateKey, code.publicKey);
  } catch {
    throw badCode("the link code's key is not usable");
  } finally {
    wipe(ephemeral.privateKey);
  }
  const key = deriveKey(shared, code.sessionId, ephemeral.publicKey, code.publicKey);
  const nonce = randomBytes(NONCE_BYTES);
  try {
    const sealed = await aesGcmEncrypt(key, nonce, payload, context(code.sessionId));
    const blob = concatBytes(Uint8Array.of(BLOB_VERSION), ephemeral.publicKey, nonce, sealed);
    if (blob.length > SEALED_BLOB_MAX_BYTES) {
      throw new GuardynClientError("BAD_INPUT", "too much to carry to the new device");
    }
    return blob;
  } finally {
    wipe(shared, key, payload);
  }
}

export async function openProvisioning(
  sessionId: string,
  device: X25519KeyPair,
  blob: Uint8Array,
): Promise<ProvisioningSecrets> {
  if (blob.length < 1 + KEY_BYTES + NONCE_BYTES + 16 || blob.length > SEALED_BLOB_MAX_BYTES) {
    throw badCode("the provisioning data has a bad size");
  }
  if (blob[0] !== BLOB_VERSION) throw badCode("the provisioning data has an unknown version");
  const ephemeral = blob.slice(1, 1 + KEY_BYTES);
  const nonce = blob.slice(1 + KEY_BYTES, 1 + KEY_BYTES + NONCE_BYTES);
  let shared: Uint8Array;
  try {
    shared = await x25519(device.privateKey, ephemeral);
  } catch {
    throw badCode("the provisioning data has a bad key");
  }
  const key = deriveKey(shared, sessionId, ephemeral, device.publicKey);
  let payload: Uint8Array;
  try {
    payload = await aesGcmDecrypt(
      key,
      nonce,
      blob.slice(1 + KEY_BYTES + NONCE_BYTES),
      context(sessionId),
    );
  } catch {
    throw badCode("the provisioning data does not open: it was not sealed for this link code");
  } finally {
    wipe(shared, key);
  }
  try {
    const json = record(JSON.parse(utf8Decode(payload)), "provisioning");
    return {
      accountId: str(json.accountId, "accountId", 64),
      username: str(json.username, "username", 64),
      identity: await deserializeIdentityKeyPair(bytes(json.identity, "identity")),
      contacts: list(json.contacts, "contacts").slice(0, LINKED_CONTACTS_MAX).map((item, i) => {
        const c = record(item, `contacts[${i}]`);
        return {
          accountId: str(c.accountId, "accountId", 64),
          username: optStr(c.username, "username", 64),
          identityKey: c.identityKey === null ? undefined : bytes(c.identityKey, "identityKey"),
          verified: bool(c.verified, "verified"),
        };
      }),
    };
  } catch (error) {
    throw badCode(`the provisioning data is malformed: ${(error as Error).message}`);
  } finally {
    wipe(payload);
  }
}
