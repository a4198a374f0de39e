/**
 * Cryptographic primitives shared by the whole E2EE library. Pure functions, no I/O, no
 * runtime-specific API: only WebCrypto (`globalThis.crypto`) and `@noble/*`.
 *
 * Backend choice, measured with `deno bench crypto/primitives_bench.ts`:
 * - X25519, Ed25519 verification, AES-256-GCM and ML-KEM-1024 use WebCrypto: native code is 3-10x
 *   faster than the pure-JS equivalents even with the cost of an async call and a key import.
 * - SHA-2, HMAC-SHA-256 and HKDF-SHA-256 use @noble/hashes synchronously: on the short inputs of
 *   key schedules (32-byte keys, one-byte messages) an async WebCrypto round trip costs more than
 *   the hashing itself.
 * - ML-KEM-1024 falls back to @noble/post-quantum where WebCrypto lacks it (browsers, older Node).
 * - XEdDSA signing needs Edwards arithmetic on a Montgomery key, which WebCrypto cannot do: it
 *   lives in xeddsa.ts on top of @noble/curves.
 * - @noble/ciphers' AES is not used for messages: it relies on lookup tables (cache-timing
 *   leaks), where WebCrypto's AES runs on AES-NI.
 *
 * Platform requirement: WebCrypto with X25519 and Ed25519 (Deno, Node 20+, current browsers).
 */
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { sha256 as nobleSha256, sha512 as nobleSha512 } from "@noble/hashes/sha2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { expand as hkdfExpand, hkdf } from "@noble/hashes/hkdf.js";
import { ml_kem1024 } from "@noble/post-quantum/ml-kem.js";
import { CryptoError } from "./errors.ts";

const subtle = globalThis.crypto.subtle;

// ---------------------------------------------------------------------------------------------
// Bytes

/** Bytes backed by a plain ArrayBuffer, the form WebCrypto accepts. */
export type Bytes = Uint8Array<ArrayBuffer>;

/** Largest single request to `randomBytes`: generous for keys and nonces, bounded for safety. */
export const MAX_RANDOM_BYTES = 1 << 20;

/** Cryptographically secure random bytes from the platform CSPRNG. */
export function randomBytes(length: number): Bytes {
  checkLength(length, MAX_RANDOM_BYTES, "random byte count");
  const out = new Uint8Array(length);
  // getRandomValues fills at most 65,536 bytes per call.
  for (let offset = 0; offset < length; offset += 65536) {
    globalThis.crypto.getRandomValues(out.subarray(offset, Math.min(length, offset + 65536)));
  }
  return out;
}

/** Concatenates byte arrays into a new array. */
export function concatBytes(...parts: readonly Uint8Array[]): Bytes {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Compares two byte arrays in time that depends only on their lengths (lengths are not secret
 * here: every secret this library compares has a fixed, public size).
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** True when every byte is zero, in time that depends only on the length. */
export function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i]!;
  return acc === 0;
}

/**
 * Overwrites secrets that are no longer needed (best effort: JS may keep copies) and drops the
 * WebCrypto key imported from each, so a wiped ratchet key is unusable through the cache too.
 */
export function wipe(...arrays: readonly Uint8Array[]): void {
  for (const array of arrays) {
    array.fill(0);
    importedPrivateKeys.delete(array);
  }
}

/** UTF-8 encoding of a string. */
export function utf8(text: string): Bytes {
  return new TextEncoder().encode(text);
}

/** Lower-case hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += bytes[i]!.toString(16).padStart(2, "0");
  return out;
}

/** Bytes of a hex string; rejects odd lengths and non-hex characters. */
export function fromHex(hex: string): Bytes {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new CryptoError("invalid-argument", "hex string must have an even number of hex digits");
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The same bytes as a plain-ArrayBuffer view, copying only if needed (e.g. SharedArrayBuffer). */
export function asBytes(bytes: Uint8Array): Bytes {
  return bytes.buffer instanceof ArrayBuffer ? bytes as Bytes : new Uint8Array(bytes);
}

function checkLength(length: number, max: number, what: string): void {
  if (!Number.isSafeInteger(length) || length < 0 || length > max) {
    throw new CryptoError("invalid-argument", `${what} must be an integer in [0, ${max}]`);
  }
}

function checkSize(bytes: Uint8Array, size: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== size) {
    throw new CryptoError("invalid-argument", `${what} must be ${size} bytes`);
  }
}

// ---------------------------------------------------------------------------------------------
// Hashes, MAC, KDF (synchronous: @noble/hashes)

/** SHA-256 digest. */
export function sha256(data: Uint8Array): Bytes {
  return asBytes(nobleSha256(data));
}

/** SHA-512 digest. */
export function sha512(data: Uint8Array): Bytes {
  return asBytes(nobleSha512(data));
}

/** HMAC-SHA-256 (RFC 2104). */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Bytes {
  return asBytes(hmac(nobleSha256, key, data));
}

/**
 * HMAC-SHA-256 of two messages under one key: the keyed state (two compression calls) is set up
 * once and cloned, as the ratchet's chain step needs exactly this (RFC 2104, same outputs).
 */
export function hmacSha256Pair(
  key: Uint8Array,
  first: Uint8Array,
  second: Uint8Array,
): [Bytes, Bytes] {
  const keyed = hmac.create(nobleSha256, key);
  const a = keyed.clone().update(first).digest();
  const b = keyed.update(second).digest();
  return [asBytes(a), asBytes(b)];
}

/** A precomputed HMAC-SHA-256 key for a constant key (HKDF's fixed salt): clone per use. */
export function hmacSha256WithFixedKey(key: Uint8Array): (data: Uint8Array) => Bytes {
  const keyed = hmac.create(nobleSha256, key);
  return (data) => asBytes(keyed.clone().update(data).digest());
}

/** Largest HKDF-SHA-256 output (RFC 5869: 255 hash blocks). */
export const MAX_HKDF_SHA256_BYTES = 255 * 32;

/**
 * HKDF-SHA-256 (RFC 5869): extract with `salt` (an empty salt means 32 zero bytes, as the RFC
 * specifies), then expand with `info` to `length` bytes.
 */
export function hkdfSha256(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  length: number,
): Bytes {
  checkLength(length, MAX_HKDF_SHA256_BYTES, "HKDF output length");
  return asBytes(hkdf(nobleSha256, ikm, salt, info, length));
}

/**
 * HKDF-SHA-256 with a constant salt and info (the ratchet's message keys): the salt's keyed HMAC
 * state is computed once. Same outputs as hkdfSha256(ikm, salt, info, length).
 */
export function hkdfSha256WithFixedSalt(
  salt: Uint8Array,
  info: Uint8Array,
): (ikm: Uint8Array, length: number) => Bytes {
  const extract = hmacSha256WithFixedKey(salt.length === 0 ? new Uint8Array(32) : salt);
  const fixedInfo = new Uint8Array(info);
  return (ikm, length) => {
    checkLength(length, MAX_HKDF_SHA256_BYTES, "HKDF output length");
    const prk = extract(ikm);
    try {
      return asBytes(hkdfExpand(nobleSha256, prk, fixedInfo, length));
    } finally {
      wipe(prk);
    }
  };
}

// ---------------------------------------------------------------------------------------------
// AES-256-GCM (WebCrypto)

export const CHACHA20_POLY1305_KEY_BYTES = 32;
export const CHACHA20_POLY1305_NONCE_BYTES = 12;
export const CHACHA20_POLY1305_TAG_BYTES = 16;
export const MAX_CHACHA20_POLY1305_PLAINTEXT_BYTES = 64 * 1024 * 1024;

/**
 * ChaCha20-Poly1305 (RFC 8439) encryption; returns ciphertext || 16-byte tag. Synchronous
 * (@noble/ciphers, add-rotate-xor: no secret-dependent table lookups), so a small message costs
 * no round trip to WebCrypto's thread pool, which dominated short-message encryption.
 */
export function chachaPolyEncrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  associatedData: Uint8Array = new Uint8Array(0),
): Bytes {
  checkSize(key, CHACHA20_POLY1305_KEY_BYTES, "ChaCha20-Poly1305 key");
  checkSize(nonce, CHACHA20_POLY1305_NONCE_BYTES, "ChaCha20-Poly1305 nonce");
  checkLength(plaintext.length, MAX_CHACHA20_POLY1305_PLAINTEXT_BYTES, "plaintext length");
  return chacha20poly1305(key, nonce, associatedData).encrypt(plaintext);
}

/**
 * ChaCha20-Poly1305 decryption of ciphertext || tag. Throws CryptoError("decryption-failed")
 * when the tag does not authenticate the ciphertext and associated data.
 */
export function chachaPolyDecrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  associatedData: Uint8Array = new Uint8Array(0),
): Bytes {
  checkSize(key, CHACHA20_POLY1305_KEY_BYTES, "ChaCha20-Poly1305 key");
  checkSize(nonce, CHACHA20_POLY1305_NONCE_BYTES, "ChaCha20-Poly1305 nonce");
  checkLength(
    ciphertext.length,
    MAX_CHACHA20_POLY1305_PLAINTEXT_BYTES + CHACHA20_POLY1305_TAG_BYTES,
    "ciphertext length",
  );
  if (ciphertext.length < CHACHA20_POLY1305_TAG_BYTES) {
    throw new CryptoError("decryption-failed", "ciphertext is shorter than the Poly1305 tag");
  }
  try {
    return chacha20poly1305(key, nonce, associatedData).decrypt(ciphertext);
  } catch {
    throw new CryptoError("decryption-failed", "message authentication failed");
  }
}

export const AES_256_KEY_BYTES = 32;
export const AES_GCM_NONCE_BYTES = 12;
export const AES_GCM_TAG_BYTES = 16;
/** WebCrypto's own bound for one GCM call is far larger; this keeps a single call reasonable. */
export const MAX_AES_GCM_PLAINTEXT_BYTES = 64 * 1024 * 1024;

function importAesKey(key: Uint8Array, usage: "encrypt" | "decrypt"): Promise<CryptoKey> {
  checkSize(key, AES_256_KEY_BYTES, "AES-256 key");
  return subtle.importKey("raw", asBytes(key), "AES-GCM", false, [usage]);
}

/** AES-256-GCM encryption with a 96-bit nonce; returns ciphertext || 16-byte tag. */
export async function aesGcmEncrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  associatedData: Uint8Array = new Uint8Array(0),
): Promise<Bytes> {
  checkSize(nonce, AES_GCM_NONCE_BYTES, "AES-GCM nonce");
  checkLength(plaintext.length, MAX_AES_GCM_PLAINTEXT_BYTES, "AES-GCM plaintext length");
  const cryptoKey = await importAesKey(key, "encrypt");
  const params = { name: "AES-GCM", iv: asBytes(nonce), additionalData: asBytes(associatedData) };
  return new Uint8Array(await subtle.encrypt(params, cryptoKey, asBytes(plaintext)));
}

/**
 * AES-256-GCM decryption of ciphertext || tag. Throws CryptoError("decryption-failed") when the
 * tag does not authenticate the ciphertext and associated data.
 */
export async function aesGcmDecrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  associatedData: Uint8Array = new Uint8Array(0),
): Promise<Bytes> {
  checkSize(nonce, AES_GCM_NONCE_BYTES, "AES-GCM nonce");
  checkLength(
    ciphertext.length,
    MAX_AES_GCM_PLAINTEXT_BYTES + AES_GCM_TAG_BYTES,
    "AES-GCM ciphertext length",
  );
  if (ciphertext.length < AES_GCM_TAG_BYTES) {
    throw new CryptoError("decryption-failed", "ciphertext is shorter than the GCM tag");
  }
  const cryptoKey = await importAesKey(key, "decrypt");
  const params = { name: "AES-GCM", iv: asBytes(nonce), additionalData: asBytes(associatedData) };
  try {
    return new Uint8Array(await subtle.decrypt(params, cryptoKey, asBytes(ciphertext)));
  } catch {
    throw new CryptoError("decryption-failed", "message authentication failed");
  }
}

// ---------------------------------------------------------------------------------------------
// X25519 (WebCrypto)

export const X25519_KEY_BYTES = 32;

/** A raw X25519 key pair: 32-byte u-coordinate public key and 32-byte clamped private scalar. */
export interface X25519KeyPair {
  readonly publicKey: Bytes;
  readonly privateKey: Bytes;
}

// PKCS#8 PrivateKeyInfo for X25519 (RFC 8410) up to the 32 raw private key bytes.
const X25519_PKCS8_PREFIX = fromHex("302e020100300506032b656e04220420");
const X25519_BASE_POINT = fromHex(
  "0900000000000000000000000000000000000000000000000000000000000000",
);
let basePointKey: Promise<CryptoKey> | undefined;

// Imported WebCrypto keys, cached per key array: a ratchet key pair takes part in two DH
// computations and a peer's ratchet key in two more, and an import costs about as much as a
// third of a DH. Keyed by array identity, so callers must not modify a key array in place
// (this library only wipes arrays after their last use, and wipe() drops the cached key).
const importedPrivateKeys = new WeakMap<Uint8Array, Promise<CryptoKey>>();
const importedPublicKeys = new WeakMap<Uint8Array, Promise<CryptoKey>>();

/** Clamps 32 bytes into an X25519 private scalar (RFC 7748 §5), as libsignal stores keys. */
export function clampX25519PrivateKey(bytes: Uint8Array): Bytes {
  checkSize(bytes, X25519_KEY_BYTES, "X25519 private key");
  const k = new Uint8Array(bytes);
  k[0]! &= 248;
  k[31]! &= 127;
  k[31]! |= 64;
  return k;
}

function importX25519PrivateKey(privateKey: Uint8Array): Promise<CryptoKey> {
  let key = importedPrivateKeys.get(privateKey);
  if (key === undefined) {
    checkSize(privateKey, X25519_KEY_BYTES, "X25519 private key");
    const pkcs8 = concatBytes(X25519_PKCS8_PREFIX, privateKey);
    key = subtle.importKey("pkcs8", pkcs8, { name: "X25519" }, false, ["deriveBits"]);
    wipe(pkcs8);
    importedPrivateKeys.set(privateKey, key);
  }
  return key;
}

function importX25519PublicKey(publicKey: Uint8Array): Promise<CryptoKey> {
  let key = importedPublicKeys.get(publicKey);
  if (key === undefined) {
    checkSize(publicKey, X25519_KEY_BYTES, "X25519 public key");
    key = subtle.importKey("raw", asBytes(publicKey), { name: "X25519" }, false, []);
    importedPublicKeys.set(publicKey, key);
  }
  return key;
}

async function deriveX25519(privateKey: CryptoKey, publicKey: CryptoKey): Promise<Bytes> {
  const params = { name: "X25519", public: publicKey };
  try {
    return new Uint8Array(await subtle.deriveBits(params, privateKey, 256));
  } catch {
    // WebCrypto refuses some low-order inputs itself (Secure Curves spec); report it uniformly.
    throw new CryptoError("invalid-shared-secret", "X25519 produced no usable shared secret");
  }
}

/** The X25519 public key of a private key: X25519(k, 9). */
export async function x25519PublicKey(privateKey: Uint8Array): Promise<Bytes> {
  basePointKey ??= importX25519PublicKey(X25519_BASE_POINT);
  const [priv, base] = await Promise.all([importX25519PrivateKey(privateKey), basePointKey]);
  return await deriveX25519(priv, base);
}

/** A fresh clamped X25519 private key, for callers that derive its public key in parallel. */
export function x25519GeneratePrivateKey(): Bytes {
  return clampX25519PrivateKey(randomBytes(X25519_KEY_BYTES));
}

/** A fresh X25519 key pair with a clamped private key. */
export async function x25519GenerateKeyPair(): Promise<X25519KeyPair> {
  const privateKey = x25519GeneratePrivateKey();
  return { publicKey: await x25519PublicKey(privateKey), privateKey };
}

/**
 * X25519 Diffie-Hellman (RFC 7748). Rejects an all-zero output, the result of a low-order peer
 * key (RFC 7748 §6.1), so callers never mix a value an attacker can predict into a key.
 */
export async function x25519(privateKey: Uint8Array, publicKey: Uint8Array): Promise<Bytes> {
  let keys: CryptoKey[];
  try {
    keys = await Promise.all([
      importX25519PrivateKey(privateKey),
      importX25519PublicKey(publicKey),
    ]);
  } catch (error) {
    if (error instanceof CryptoError) throw error;
    throw new CryptoError("invalid-key", "X25519 key was refused by WebCrypto");
  }
  const shared = await deriveX25519(keys[0]!, keys[1]!);
  if (isAllZero(shared)) {
    throw new CryptoError("invalid-shared-secret", "X25519 output is all zero (low-order key)");
  }
  return shared;
}

// ---------------------------------------------------------------------------------------------
// Ed25519 verification (WebCrypto)

/**
 * Ed25519 verification (RFC 8032) of a 64-byte signature under a 32-byte encoded public key.
 * Returns false for any malformed input instead of throwing.
 */
export async function ed25519Verify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    const key = await subtle.importKey("raw", asBytes(publicKey), { name: "Ed25519" }, false, [
      "verify",
    ]);
    return await subtle.verify({ name: "Ed25519" }, key, asBytes(signature), asBytes(message));
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// ML-KEM-1024 (FIPS 203): WebCrypto where available, @noble/post-quantum otherwise

export const ML_KEM_1024_PUBLIC_KEY_BYTES = 1568;
export const ML_KEM_1024_CIPHERTEXT_BYTES = 1568;
/** The private key is kept as the 64-byte seed d || z (FIPS 203 §7.1), WebCrypto's "raw-seed". */
export const ML_KEM_1024_SEED_BYTES = 64;
export const ML_KEM_SHARED_SECRET_BYTES = 32;

export interface MlKemKeyPair {
  readonly publicKey: Bytes;
  readonly seed: Bytes;
}

export interface MlKemEncapsulation {
  readonly sharedSecret: Bytes;
  readonly ciphertext: Bytes;
}

/** One ML-KEM-1024 implementation. */
export interface MlKem1024 {
  readonly name: string;
  generateKeyPair(): Promise<MlKemKeyPair>;
  /** Throws CryptoError("invalid-key") for a key that fails the FIPS 203 modulus check. */
  encapsulate(publicKey: Uint8Array): Promise<MlKemEncapsulation>;
  /** Never fails on a well-sized ciphertext: a forged one yields an unrelated secret (FIPS 203). */
  decapsulate(seed: Uint8Array, ciphertext: Uint8Array): Promise<Bytes>;
}

function checkKemSizes(publicKey?: Uint8Array, seed?: Uint8Array, ciphertext?: Uint8Array): void {
  if (publicKey) checkSize(publicKey, ML_KEM_1024_PUBLIC_KEY_BYTES, "ML-KEM-1024 public key");
  if (seed) checkSize(seed, ML_KEM_1024_SEED_BYTES, "ML-KEM-1024 seed");
  if (ciphertext) checkSize(ciphertext, ML_KEM_1024_CIPHERTEXT_BYTES, "ML-KEM-1024 ciphertext");
}

/** Runs synchronous work as a promise, so its exceptions become rejections. */
function settle<T>(work: () => T): Promise<T> {
  return new Promise((resolve) => resolve(work()));
}

/** Pure-JS ML-KEM-1024 from @noble/post-quantum. */
export const nobleMlKem1024: MlKem1024 = {
  name: "@noble/post-quantum",
  generateKeyPair: () =>
    settle(() => {
      const seed = randomBytes(ML_KEM_1024_SEED_BYTES);
      return { publicKey: asBytes(ml_kem1024.keygen(seed).publicKey), seed };
    }),
  encapsulate: (publicKey) =>
    settle(() => {
      checkKemSizes(publicKey);
      let encapsulation;
      try {
        encapsulation = ml_kem1024.encapsulate(publicKey);
      } catch {
        throw new CryptoError("invalid-key", "ML-KEM-1024 public key is invalid");
      }
      return {
        sharedSecret: asBytes(encapsulation.sharedSecret),
        ciphertext: asBytes(encapsulation.cipherText),
      };
    }),
  decapsulate: (seed, ciphertext) =>
    settle(() => {
      checkKemSizes(undefined, seed, ciphertext);
      const { secretKey } = ml_kem1024.keygen(seed);
      const sharedSecret = ml_kem1024.decapsulate(ciphertext, secretKey);
      wipe(secretKey);
      return asBytes(sharedSecret);
    }),
};

// WebCrypto "Modern Algorithms" additions (ML-KEM), absent from the DOM typings.
interface KemSubtleCrypto {
  generateKey(
    alg: { name: string },
    extractable: boolean,
    usages: string[],
  ): Promise<CryptoKeyPair>;
  importKey(
    format: "raw-public" | "raw-seed",
    data: Bytes,
    alg: { name: string },
    extractable: boolean,
    usages: string[],
  ): Promise<CryptoKey>;
  exportKey(format: "raw-public" | "raw-seed", key: CryptoKey): Promise<ArrayBuffer>;
  encapsulateBits(
    alg: { name: string },
    key: CryptoKey,
  ): Promise<{ sharedKey: ArrayBuffer; ciphertext: ArrayBuffer }>;
  decapsulateBits(alg: { name: string }, key: CryptoKey, ciphertext: Bytes): Promise<ArrayBuffer>;
}
const kemSubtle = subtle as unknown as KemSubtleCrypto;
const ML_KEM_1024 = { name: "ML-KEM-1024" };

/** Native ML-KEM-1024 through WebCrypto (Deno 2.6+, Node 24.7+). */
export const webCryptoMlKem1024: MlKem1024 = {
  name: "WebCrypto",
  async generateKeyPair() {
    const pair = await kemSubtle.generateKey(ML_KEM_1024, true, [
      "encapsulateBits",
      "decapsulateBits",
    ]);
    const [publicKey, seed] = await Promise.all([
      kemSubtle.exportKey("raw-public", pair.publicKey),
      kemSubtle.exportKey("raw-seed", pair.privateKey),
    ]);
    return { publicKey: new Uint8Array(publicKey), seed: new Uint8Array(seed) };
  },
  async encapsulate(publicKey) {
    checkKemSizes(publicKey);
    try {
      const key = await kemSubtle.importKey("raw-public", asBytes(publicKey), ML_KEM_1024, false, [
        "encapsulateBits",
      ]);
      const { sharedKey, ciphertext } = await kemSubtle.encapsulateBits(ML_KEM_1024, key);
      return { sharedSecret: new Uint8Array(sharedKey), ciphertext: new Uint8Array(ciphertext) };
    } catch {
      throw new CryptoError("invalid-key", "ML-KEM-1024 public key is invalid");
    }
  },
  async decapsulate(seed, ciphertext) {
    checkKemSizes(undefined, seed, ciphertext);
    const key = await kemSubtle.importKey("raw-seed", asBytes(seed), ML_KEM_1024, false, [
      "decapsulateBits",
    ]);
    return new Uint8Array(await kemSubtle.decapsulateBits(ML_KEM_1024, key, asBytes(ciphertext)));
  },
};

let selectedMlKem: Promise<MlKem1024> | undefined;

async function detectMlKem(): Promise<MlKem1024> {
  if (typeof kemSubtle.encapsulateBits !== "function") return nobleMlKem1024;
  try {
    await webCryptoMlKem1024.generateKeyPair();
    return webCryptoMlKem1024;
  } catch {
    return nobleMlKem1024;
  }
}

/** The ML-KEM-1024 implementation in use: WebCrypto when the platform has it, else noble. */
export function mlKem1024(): Promise<MlKem1024> {
  selectedMlKem ??= detectMlKem();
  return selectedMlKem;
}

/** A fresh ML-KEM-1024 key pair (public key and 64-byte seed). */
export async function mlKemGenerateKeyPair(): Promise<MlKemKeyPair> {
  return await (await mlKem1024()).generateKeyPair();
}

/** Encapsulates a fresh shared secret to an ML-KEM-1024 public key. */
export async function mlKemEncapsulate(publicKey: Uint8Array): Promise<MlKemEncapsulation> {
  return await (await mlKem1024()).encapsulate(publicKey);
}

/** Recovers the shared secret of a ciphertext with the private key seed. */
export async function mlKemDecapsulate(seed: Uint8Array, ciphertext: Uint8Array): Promise<Bytes> {
  return await (await mlKem1024()).decapsulate(seed, ciphertext);
}
