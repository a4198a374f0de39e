/**
 * ts-mls crypto provider tuned for commits in large groups.
 *
 * An MLS commit runs thousands of tiny hashes, HMACs and HKDF steps (tree hash, secret tree,
 * key schedule). Through WebCrypto each is an async round trip plus a key import, which costs far
 * more than the hashing itself; @noble/hashes does them synchronously in microseconds. Signatures,
 * HPKE, AEAD and randomness stay with ts-mls's default provider (WebCrypto / @hpke/*).
 */
import { hmac } from "@noble/hashes/hmac.js";
import { expand, extract } from "@noble/hashes/hkdf.js";
import { sha256, sha384, sha512 } from "@noble/hashes/sha2.js";
import {
  type CiphersuiteImpl,
  type CryptoProvider,
  defaultCryptoProvider,
  type Hash,
  type HashAlgorithm,
  type Kdf,
} from "ts-mls";

const HASHES = { "SHA-256": sha256, "SHA-384": sha384, "SHA-512": sha512 } as const;
const KDF_HASHES = { "HKDF-SHA256": sha256, "HKDF-SHA384": sha384, "HKDF-SHA512": sha512 } as const;

export const guardynCryptoProvider: CryptoProvider = {
  async getCiphersuiteImpl(cs): Promise<CiphersuiteImpl> {
    const base = await defaultCryptoProvider.getCiphersuiteImpl(cs);
    return { ...base, hash: nobleHash(cs.hash), kdf: nobleKdf(cs.hpke.kdf, base.kdf.size) };
  },
};

function nobleHash(algorithm: HashAlgorithm): Hash {
  const h = HASHES[algorithm];
  return {
    digest: (data) => Promise.resolve(h(data)),
    mac: (key, data) => Promise.resolve(hmac(h, key, data)),
    verifyMac: (key, mac, data) => Promise.resolve(constantTimeEqual(hmac(h, key, data), mac)),
  };
}

function nobleKdf(algorithm: keyof typeof KDF_HASHES, size: number): Kdf {
  const h = KDF_HASHES[algorithm];
  return {
    extract: (salt, ikm) => Promise.resolve(extract(h, ikm, salt)),
    expand: (prk, info, length) => Promise.resolve(expand(h, prk, info, length)),
    size,
  };
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
