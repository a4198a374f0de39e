import { ed25519, ED25519_TORSION_SUBGROUP } from "@noble/curves/ed25519.js";
import { numberToBytesLE } from "@noble/curves/utils.js";
import { assert, assertEquals } from "../tests/assert.ts";
import { expectCode, expectRejectionCode } from "./crypto_test_kit.ts";
import {
  decodeKemPublicKey,
  decodePublicKey,
  deserializeIdentityKeyPair,
  deserializePrekey,
  encodeKemPublicKey,
  encodePublicKey,
  generateIdentityKeyPair,
  generateKemPrekeys,
  generateLastResortKemPrekey,
  generateOneTimePrekeys,
  generateSignedPrekey,
  KEM_KEY_TYPE_ML_KEM_1024,
  MAX_PREKEY_BATCH,
  serializeIdentityKeyPair,
  serializePrekey,
  toPublicPrekey,
  validatePublicKey,
  verifyPublicPrekey,
} from "./keys.ts";
import { randomBytes, x25519, x25519GenerateKeyPair } from "./primitives.ts";
import { xeddsaVerify } from "./xeddsa.ts";

const { Fp } = ed25519.Point;

/** The u-coordinates of Curve25519's small-order points, from noble's Edwards torsion group. */
function smallOrderUs(): bigint[] {
  const us = new Set<bigint>();
  for (const hex of ED25519_TORSION_SUBGROUP) {
    const point = ed25519.Point.fromHex(hex);
    const { y } = point.toAffine();
    if (y === 1n) continue; // the identity has no u-coordinate
    us.add(Fp.mul(Fp.add(Fp.ONE, y), Fp.inv(Fp.sub(Fp.ONE, y)))); // u = (1 + y) / (1 - y)
  }
  us.add(Fp.ORDER - 1n); // order 4 on the quadratic twist
  return [...us];
}

Deno.test("public keys: 33-byte encoding round trip and validation", async () => {
  const { publicKey } = await x25519GenerateKeyPair();
  const encoded = encodePublicKey(publicKey);
  assertEquals(encoded.length, 33);
  assertEquals(encoded[0], 0x05);
  assertEquals(decodePublicKey(encoded), publicKey);
  expectCode(() => decodePublicKey(encoded.subarray(1)), "invalid-key");
  expectCode(() => decodePublicKey(Uint8Array.of(0x06, ...publicKey)), "invalid-key");
  const nonCanonical = numberToBytesLE(Fp.ORDER + 5n, 32);
  expectCode(() => validatePublicKey(nonCanonical), "invalid-key");
});

Deno.test("public keys: every small-order point is refused (and really is small order)", async () => {
  const us = smallOrderUs();
  assertEquals(us.length, 5);
  const { privateKey } = await x25519GenerateKeyPair();
  for (const u of us) {
    const key = numberToBytesLE(u, 32);
    expectCode(() => validatePublicKey(key), "invalid-key");
    await expectRejectionCode(x25519(privateKey, key), "invalid-shared-secret");
  }
  validatePublicKey(numberToBytesLE(9n, 32));
});

Deno.test("KEM public keys: 0x0A type byte, 1569 bytes", () => {
  const raw = randomBytes(1568);
  const encoded = encodeKemPublicKey(raw);
  assertEquals(encoded[0], KEM_KEY_TYPE_ML_KEM_1024);
  assertEquals(encoded.length, 1569);
  assertEquals(decodeKemPublicKey(encoded), raw);
  expectCode(() => decodeKemPublicKey(Uint8Array.of(0x08, ...raw)), "invalid-key");
  expectCode(() => encodeKemPublicKey(raw.subarray(1)), "invalid-key");
});

Deno.test("prekeys: signed by the identity over the encoded public key, in id batches", async () => {
  const identity = await generateIdentityKeyPair();
  const stranger = await generateIdentityKeyPair();
  const identityKey = encodePublicKey(identity.publicKey);
  const signed = await generateSignedPrekey(identity, 7);
  const oneTime = await generateOneTimePrekeys(identity, 100, 3);
  const kem = await generateKemPrekeys(identity, 200, 2);
  const lastResort = await generateLastResortKemPrekey(identity, 300);
  assertEquals(oneTime.map((p) => p.id), [100, 101, 102]);
  assertEquals(kem.map((p) => [p.id, p.kind]), [[200, "kem-one-time"], [201, "kem-one-time"]]);
  assertEquals(lastResort.kind, "kem-last-resort");
  for (const prekey of [signed, ...oneTime, ...kem, lastResort]) {
    const published = toPublicPrekey(prekey);
    assert(await verifyPublicPrekey(identityKey, published));
    assert(await xeddsaVerify(identity.publicKey, published.publicKey, published.signature));
    assert(!(await verifyPublicPrekey(encodePublicKey(stranger.publicKey), published)));
    const tampered = published.publicKey.slice();
    tampered[tampered.length - 1]! ^= 1;
    assert(!(await verifyPublicPrekey(identityKey, { ...published, publicKey: tampered })));
  }
  assertEquals(toPublicPrekey(kem[0]!).publicKey.length, 1569);
  assertEquals(toPublicPrekey(signed).publicKey.length, 33);
});

Deno.test("prekeys: ids and batch sizes are bounded", async () => {
  const identity = await generateIdentityKeyPair();
  await expectRejectionCode(generateOneTimePrekeys(identity, 0, 0), "invalid-argument");
  await expectRejectionCode(
    generateOneTimePrekeys(identity, 0, MAX_PREKEY_BATCH + 1),
    "invalid-argument",
  );
  await expectRejectionCode(generateOneTimePrekeys(identity, 2 ** 32 - 2, 3), "invalid-argument");
  await expectRejectionCode(generateKemPrekeys(identity, -1, 1), "invalid-argument");
  expectCode(() => generateSignedPrekey(identity, 1.5), "invalid-argument");
});

Deno.test("private records: identity and every prekey kind round-trip byte for byte", async () => {
  const identity = await generateIdentityKeyPair();
  const serialized = serializeIdentityKeyPair(identity);
  const restored = await deserializeIdentityKeyPair(serialized);
  assertEquals(serializeIdentityKeyPair(restored), serialized);
  const prekeys = [
    await generateSignedPrekey(identity, 1),
    ...(await generateOneTimePrekeys(identity, 2, 1)),
    ...(await generateKemPrekeys(identity, 3, 1)),
    await generateLastResortKemPrekey(identity, 4),
  ];
  for (const prekey of prekeys) {
    const bytes = serializePrekey(prekey);
    const back = deserializePrekey(bytes);
    assertEquals(back, prekey);
    assertEquals(serializePrekey(back), bytes);
    expectCode(() => deserializePrekey(bytes.subarray(0, bytes.length - 1)), "malformed");
    expectCode(() => deserializePrekey(Uint8Array.of(...bytes, 0)), "malformed");
  }
});

Deno.test("private records: corrupted identity records are refused", async () => {
  const identity = await generateIdentityKeyPair();
  const serialized = serializeIdentityKeyPair(identity);
  const wrongVersion = serialized.slice();
  wrongVersion[0] = 9;
  await expectRejectionCode(deserializeIdentityKeyPair(wrongVersion), "unsupported-version");
  const mismatched = serialized.slice();
  mismatched[40]! ^= 0x10; // a private-key byte
  await expectRejectionCode(deserializeIdentityKeyPair(mismatched), "invalid-key");
});
