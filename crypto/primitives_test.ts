import { assert, assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { expectCode, expectRejectionCode } from "./crypto_test_kit.ts";
import { CryptoError } from "./errors.ts";
import {
  aesGcmDecrypt,
  aesGcmEncrypt,
  clampX25519PrivateKey,
  concatBytes,
  constantTimeEqual,
  ed25519Verify,
  fromHex,
  hkdfSha256,
  hmacSha256,
  isAllZero,
  MAX_HKDF_SHA256_BYTES,
  type MlKem1024,
  mlKem1024,
  nobleMlKem1024,
  randomBytes,
  toHex,
  webCryptoMlKem1024,
  wipe,
  x25519,
  x25519GenerateKeyPair,
  x25519PublicKey,
} from "./primitives.ts";
import { ml_kem1024 } from "@noble/post-quantum/ml-kem.js";
import rfc7748 from "./testdata/rfc7748_x25519.json" with { type: "json" };
import rfc8032 from "./testdata/rfc8032_ed25519.json" with { type: "json" };
import rfc5869 from "./testdata/rfc5869_hkdf_sha256.json" with { type: "json" };
import libsignal from "./testdata/libsignal_curve25519.json" with { type: "json" };
import wycheproofX25519 from "./testdata/wycheproof/x25519_test.json" with { type: "json" };
import wycheproofEd25519 from "./testdata/wycheproof/ed25519_test.json" with { type: "json" };
import wycheproofAesGcm from "./testdata/wycheproof/aes_gcm_test.json" with { type: "json" };
import wycheproofHkdf from "./testdata/wycheproof/hkdf_sha256_test.json" with { type: "json" };
import wycheproofMlKem from "./testdata/wycheproof/mlkem_1024_test.json" with { type: "json" };
import wycheproofMlKemEncaps from "./testdata/wycheproof/mlkem_1024_encaps_test.json" with {
  type: "json",
};

const hex = fromHex;

Deno.test("byte helpers: hex, concat, constant-time compare, zero check", () => {
  assertEquals(toHex(hex("00ff10")), "00ff10");
  assertThrows(() => fromHex("abc"), CryptoError);
  assertThrows(() => fromHex("zz"), CryptoError);
  assertEquals(toHex(concatBytes(hex("01"), hex(""), hex("0203"))), "010203");
  assert(constantTimeEqual(hex("0102"), hex("0102")));
  assert(!constantTimeEqual(hex("0102"), hex("0103")));
  assert(!constantTimeEqual(hex("0102"), hex("010200")));
  assert(isAllZero(new Uint8Array(32)));
  assert(!isAllZero(hex("0000000001")));
  assertEquals(randomBytes(100_000).length, 100_000);
  assertThrows(() => randomBytes(-1), CryptoError);
});

Deno.test("X25519: RFC 7748 section 5.2 vectors", async () => {
  for (const v of rfc7748.vectors) {
    assertEquals(toHex(await x25519(hex(v.scalar), hex(v.u))), v.output);
  }
});

Deno.test("X25519: RFC 7748 section 5.2 iterated 1 and 1,000 times", async () => {
  let k = hex(rfc7748.iterated.start);
  let u = hex(rfc7748.iterated.start);
  for (let i = 1; i <= 1000; i++) {
    [k, u] = [await x25519(k, u), k];
    if (i === 1) assertEquals(toHex(k), rfc7748.iterated.after1);
  }
  assertEquals(toHex(k), rfc7748.iterated.after1000);
});

Deno.test("X25519: libsignal agreement vector and public key derivation", async () => {
  const v = libsignal.agreement;
  assertEquals(toHex(await x25519PublicKey(hex(v.alicePrivate))), v.alicePublic);
  assertEquals(toHex(await x25519PublicKey(hex(v.bobPrivate))), v.bobPublic);
  assertEquals(toHex(await x25519(hex(v.alicePrivate), hex(v.bobPublic))), v.shared);
  assertEquals(toHex(await x25519(hex(v.bobPrivate), hex(v.alicePublic))), v.shared);
});

Deno.test("X25519: Wycheproof; all-zero shared secrets are refused", async () => {
  let checked = 0;
  for (const group of wycheproofX25519.testGroups) {
    for (const t of group.tests) {
      if (isAllZero(hex(t.shared))) {
        await expectRejectionCode(x25519(hex(t.private), hex(t.public)), "invalid-shared-secret");
      } else {
        assertEquals(
          toHex(await x25519(hex(t.private), hex(t.public))),
          t.shared,
          `tcId ${t.tcId}`,
        );
      }
      checked++;
    }
  }
  assertEquals(checked, wycheproofX25519.numberOfTests);
});

Deno.test("X25519: generated key pairs are clamped and agree", async () => {
  const a = await x25519GenerateKeyPair();
  const b = await x25519GenerateKeyPair();
  assertEquals(toHex(clampX25519PrivateKey(a.privateKey)), toHex(a.privateKey));
  assertEquals(
    toHex(await x25519(a.privateKey, b.publicKey)),
    toHex(await x25519(b.privateKey, a.publicKey)),
  );
  await assertRejects(() => x25519(a.privateKey, new Uint8Array(31)), CryptoError);
});

Deno.test("Ed25519 verify: RFC 8032 section 7.1 tests 1-3, and altered inputs fail", async () => {
  for (const t of rfc8032.tests) {
    const [publicKey, message, signature] = [hex(t.publicKey), hex(t.message), hex(t.signature)];
    assert(await ed25519Verify(publicKey, message, signature), `test ${t.test}`);
    const badSignature = signature.slice();
    badSignature[5]! ^= 1;
    assert(!await ed25519Verify(publicKey, message, badSignature));
    assert(!await ed25519Verify(publicKey, concatBytes(message, hex("00")), signature));
    assert(!await ed25519Verify(signature.subarray(0, 31), message, signature));
  }
});

Deno.test("Ed25519 verify: Wycheproof", async () => {
  let checked = 0;
  for (const group of wycheproofEd25519.testGroups) {
    const publicKey = hex(group.publicKey.pk);
    for (const t of group.tests) {
      const ok = await ed25519Verify(publicKey, hex(t.msg), hex(t.sig));
      assertEquals(ok, t.result === "valid", `tcId ${t.tcId}`);
      checked++;
    }
  }
  assertEquals(checked, wycheproofEd25519.numberOfTests);
});

Deno.test("HKDF-SHA-256: RFC 5869 A.1-A.3 (PRK and OKM)", () => {
  for (const t of rfc5869.tests) {
    assertEquals(toHex(hmacSha256(hex(t.salt), hex(t.ikm))), t.prk, `case ${t.case}`);
    assertEquals(toHex(hkdfSha256(hex(t.ikm), hex(t.salt), hex(t.info), t.length)), t.okm);
  }
});

Deno.test("HKDF-SHA-256: Wycheproof, oversized outputs refused", () => {
  let checked = 0;
  for (const group of wycheproofHkdf.testGroups) {
    for (const t of group.tests) {
      const derive = () => hkdfSha256(hex(t.ikm), hex(t.salt), hex(t.info), t.size);
      if (t.result === "valid") assertEquals(toHex(derive()), t.okm, `tcId ${t.tcId}`);
      else expectCode(derive, "invalid-argument");
      checked++;
    }
  }
  assertEquals(checked, wycheproofHkdf.numberOfTests);
  assertThrows(() => hkdfSha256(hex("00"), hex(""), hex(""), MAX_HKDF_SHA256_BYTES + 1));
});

Deno.test("AES-256-GCM: Wycheproof (256-bit keys, 96-bit nonces, 128-bit tags)", async () => {
  let checked = 0;
  for (const group of wycheproofAesGcm.testGroups) {
    if (group.keySize !== 256 || group.ivSize !== 96 || group.tagSize !== 128) continue;
    for (const t of group.tests) {
      const [key, nonce, aad] = [hex(t.key), hex(t.iv), hex(t.aad)];
      const sealed = concatBytes(hex(t.ct), hex(t.tag));
      if (t.result === "valid") {
        assertEquals(toHex(await aesGcmEncrypt(key, nonce, hex(t.msg), aad)), toHex(sealed));
        assertEquals(toHex(await aesGcmDecrypt(key, nonce, sealed, aad)), t.msg);
      } else {
        await expectRejectionCode(aesGcmDecrypt(key, nonce, sealed, aad), "decryption-failed");
      }
      checked++;
    }
  }
  assert(checked > 60);
});

Deno.test("AES-256-GCM: wrong key or nonce sizes are refused", async () => {
  await assertRejects(() => aesGcmEncrypt(new Uint8Array(16), new Uint8Array(12), hex("")));
  await assertRejects(() => aesGcmEncrypt(new Uint8Array(32), new Uint8Array(16), hex("")));
  await assertRejects(() => aesGcmDecrypt(new Uint8Array(32), new Uint8Array(12), hex("00")));
});

const mlKemBackends: MlKem1024[] = [nobleMlKem1024, webCryptoMlKem1024];

for (const backend of mlKemBackends) {
  Deno.test(`ML-KEM-1024 (${backend.name}): Wycheproof decapsulation from seed`, async () => {
    let checked = 0;
    for (const group of wycheproofMlKem.testGroups) {
      for (const t of group.tests) {
        const decapsulate = () => backend.decapsulate(hex(t.seed), hex(t.c));
        if (t.result === "valid") {
          assertEquals(toHex(await decapsulate()), t.K, `tcId ${t.tcId}`);
          if (backend === nobleMlKem1024) {
            assertEquals(toHex(ml_kem1024.keygen(hex(t.seed)).publicKey), t.ek ?? "");
          }
        } else {
          await assertRejects(decapsulate, CryptoError);
        }
        checked++;
      }
    }
    assertEquals(checked, wycheproofMlKem.numberOfTests);
  });

  Deno.test(`ML-KEM-1024 (${backend.name}): Wycheproof encapsulation key checks`, async () => {
    let checked = 0;
    for (const group of wycheproofMlKemEncaps.testGroups) {
      for (const t of group.tests) {
        if (t.result === "valid") {
          const { ciphertext, sharedSecret } = await backend.encapsulate(hex(t.ek));
          assertEquals(ciphertext.length, 1568);
          assertEquals(sharedSecret.length, 32);
          // The deterministic variant (message m given) exists only in noble.
          const fixed = ml_kem1024.encapsulate(hex(t.ek), hex(t.m));
          assertEquals(toHex(fixed.cipherText), t.c, `tcId ${t.tcId}`);
          assertEquals(toHex(fixed.sharedSecret), t.K);
        } else {
          await assertRejects(() => backend.encapsulate(hex(t.ek)), CryptoError);
        }
        checked++;
      }
    }
    assertEquals(checked, wycheproofMlKemEncaps.numberOfTests);
  });
}

Deno.test("ML-KEM-1024: the two backends interoperate; the platform one is selected", async () => {
  for (
    const [a, b] of [[nobleMlKem1024, webCryptoMlKem1024], [webCryptoMlKem1024, nobleMlKem1024]]
  ) {
    const pair = await a!.generateKeyPair();
    const { ciphertext, sharedSecret } = await b!.encapsulate(pair.publicKey);
    assertEquals(toHex(await a!.decapsulate(pair.seed, ciphertext)), toHex(sharedSecret));
    assertEquals(toHex(await b!.decapsulate(pair.seed, ciphertext)), toHex(sharedSecret));
  }
  // Deno has ML-KEM in WebCrypto.
  assertEquals((await mlKem1024()).name, webCryptoMlKem1024.name);
});

// Audit finding 10: before wipe() dropped the cached import, a wiped private key array still
// derived the old shared secret through the WebCrypto key cached for it.
Deno.test("X25519: a wiped private key is no longer usable through the import cache", async () => {
  const mine = await x25519GenerateKeyPair();
  const peer = await x25519GenerateKeyPair();
  const before = await x25519(mine.privateKey, peer.publicKey);
  wipe(mine.privateKey);
  const after = await x25519(mine.privateKey, peer.publicKey).catch(() => undefined);
  assert(after === undefined || !constantTimeEqual(after, before), "the wiped key still worked");
});
