/**
 * The measurements behind primitives.ts's backend choices: each primitive through WebCrypto and
 * through @noble, on the input sizes the protocols use. Groups compare like with like.
 */
import { ed25519, x25519 as nobleX25519 } from "@noble/curves/ed25519.js";
import { gcm } from "@noble/ciphers/aes.js";
import { hmac } from "@noble/hashes/hmac.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import {
  aesGcmEncrypt,
  ed25519Verify,
  nobleMlKem1024,
  randomBytes,
  utf8,
  webCryptoMlKem1024,
  x25519,
  x25519GenerateKeyPair,
} from "./primitives.ts";

const subtle = crypto.subtle;
const key32 = randomBytes(32);
const one = Uint8Array.of(1);
const info = utf8("Guardyn_MessageKeys");
const zeros = new Uint8Array(32);
const kib = randomBytes(1024);
const nonce = randomBytes(12);
const aad = randomBytes(108);

const alice = await x25519GenerateKeyPair();
const bob = await x25519GenerateKeyPair();
Deno.bench("X25519 DH: WebCrypto (keys imported once, cached)", { group: "x25519" }, async () => {
  await x25519(alice.privateKey, bob.publicKey);
});
Deno.bench(
  "X25519 DH: WebCrypto (fresh key arrays: imports included)",
  { group: "x25519" },
  async () => {
    await x25519(alice.privateKey.slice(), bob.publicKey.slice());
  },
);
Deno.bench("X25519 DH: noble", { group: "x25519" }, () => {
  nobleX25519.getSharedSecret(alice.privateKey, bob.publicKey);
});
Deno.bench("X25519 key pair: WebCrypto", { group: "x25519-keygen" }, async () => {
  await x25519GenerateKeyPair();
});
Deno.bench("X25519 key pair: noble", { group: "x25519-keygen" }, () => {
  nobleX25519.getPublicKey(randomBytes(32));
});

const edSecret = ed25519.utils.randomSecretKey();
const edPublic = ed25519.getPublicKey(edSecret);
const edMessage = randomBytes(33);
const edSignature = ed25519.sign(edMessage, edSecret);
Deno.bench("Ed25519 verify: WebCrypto", { group: "ed25519" }, async () => {
  await ed25519Verify(edPublic, edMessage, edSignature);
});
Deno.bench("Ed25519 verify: noble", { group: "ed25519" }, () => {
  ed25519.verify(edSignature, edMessage, edPublic);
});

Deno.bench("HMAC-SHA-256 (chain step): noble", { group: "hmac" }, () => {
  hmac(sha256, key32, one);
});
Deno.bench("HMAC-SHA-256 (chain step): WebCrypto", { group: "hmac" }, async () => {
  const k = await subtle.importKey("raw", key32, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  await subtle.sign("HMAC", k, one);
});

Deno.bench("HKDF-SHA-256 44 bytes (message keys): noble", { group: "hkdf" }, () => {
  hkdf(sha256, key32, zeros, info, 44);
});
Deno.bench("HKDF-SHA-256 44 bytes (message keys): WebCrypto", { group: "hkdf" }, async () => {
  const k = await subtle.importKey("raw", key32, "HKDF", false, ["deriveBits"]);
  await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: zeros, info }, k, 352);
});

Deno.bench("AES-256-GCM 1 KiB: WebCrypto", { group: "aes-gcm" }, async () => {
  await aesGcmEncrypt(key32, nonce, kib, aad);
});
Deno.bench("AES-256-GCM 1 KiB: noble", { group: "aes-gcm" }, () => {
  gcm(key32, nonce, aad).encrypt(kib);
});

const hashInput = randomBytes(100);
Deno.bench("SHA-512 100 bytes: noble", { group: "sha512" }, () => {
  sha512(hashInput);
});
Deno.bench("SHA-512 100 bytes: WebCrypto", { group: "sha512" }, async () => {
  await subtle.digest("SHA-512", hashInput);
});

const kemPair = await webCryptoMlKem1024.generateKeyPair();
const kemCiphertext = (await webCryptoMlKem1024.encapsulate(kemPair.publicKey)).ciphertext;
for (const backend of [webCryptoMlKem1024, nobleMlKem1024]) {
  Deno.bench(`ML-KEM-1024 encapsulate: ${backend.name}`, { group: "ml-kem-encaps" }, async () => {
    await backend.encapsulate(kemPair.publicKey);
  });
  Deno.bench(`ML-KEM-1024 decapsulate (from seed): ${backend.name}`, {
    group: "ml-kem-decaps",
  }, async () => {
    await backend.decapsulate(kemPair.seed, kemCiphertext);
  });
}
