import { ed25519 } from "@noble/curves/ed25519.js";
import { bytesToNumberLE, numberToBytesLE } from "@noble/curves/utils.js";
import { assert, assertEquals } from "../tests/assert.ts";
import { expectCode } from "./crypto_test_kit.ts";
import {
  concatBytes,
  constantTimeEqual,
  fromHex,
  randomBytes,
  sha512,
  x25519GenerateKeyPair,
  x25519PublicKey,
} from "./primitives.ts";
import { xeddsaSign, xeddsaVerify } from "./xeddsa.ts";
import libsignal from "./testdata/libsignal_curve25519.json" with { type: "json" };

const { Fp, Fn } = ed25519.Point;

/**
 * libsignal's verify_signature (rust/core/src/curve/curve25519.rs), transcribed with plain
 * point arithmetic: Rcheck = sB - hA compared with R. A cross-check for the WebCrypto path.
 */
function referenceVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) {
  const u = Fp.create(bytesToNumberLE(publicKey) & ((1n << 255n) - 1n));
  if (Fp.is0(Fp.add(u, Fp.ONE))) return false;
  const encodedA = numberToBytesLE(Fp.mul(Fp.sub(u, Fp.ONE), Fp.inv(Fp.add(u, Fp.ONE))), 32);
  encodedA[31]! |= signature[63]! & 0x80;
  let pointA;
  try {
    pointA = ed25519.Point.fromBytes(encodedA);
  } catch {
    return false;
  }
  const s = signature.slice(32);
  s[31]! &= 0x7f;
  if ((s[31]! & 0xe0) !== 0) return false;
  const capitalR = signature.subarray(0, 32);
  const h = Fn.create(bytesToNumberLE(sha512(concatBytes(capitalR, encodedA, message))));
  const check = ed25519.Point.BASE.multiplyUnsafe(Fn.create(bytesToNumberLE(s)))
    .subtract(pointA.multiplyUnsafe(h));
  return constantTimeEqual(check.toBytes(), capitalR);
}

Deno.test("XEdDSA: verifies libsignal's signature; every flipped bit fails", async () => {
  const v = libsignal.signature;
  const [publicKey, message, signature] = [
    fromHex(v.identityPublic),
    fromHex(v.message),
    fromHex(v.signature),
  ];
  assertEquals(await x25519PublicKey(fromHex(v.identityPrivate)), publicKey);
  // libsignal carries the Edwards sign bit in bit 255 of s: this signature needs it (bit = 1),
  // so a verifier that took the bit as 0, as the XEdDSA specification does, would refuse it.
  assert(signature[63]! >> 7 === 1, "the vector no longer exercises the sign bit");
  assert(await xeddsaVerify(publicKey, message, signature));
  assert(referenceVerify(publicKey, message, signature));
  for (let i = 0; i < signature.length; i++) {
    const altered = signature.slice();
    altered[i]! ^= 0x01;
    assert(!(await xeddsaVerify(publicKey, message, altered)), `byte ${i}`);
  }
});

Deno.test("XEdDSA: sign/verify round trips; signatures use sign bit 0 as the spec says", async () => {
  for (let i = 0; i < 25; i++) {
    const { publicKey, privateKey } = await x25519GenerateKeyPair();
    const message = randomBytes(i * 7);
    const signature = xeddsaSign(privateKey, message);
    assertEquals(signature.length, 64);
    assertEquals(signature[63]! & 0x80, 0);
    assert(await xeddsaVerify(publicKey, message, signature));
    // libsignal's verifier (the reference transcription) accepts our signatures too.
    assert(referenceVerify(publicKey, message, signature));
  }
});

Deno.test("XEdDSA: altered signatures, messages and keys are rejected", async () => {
  const { publicKey, privateKey } = await x25519GenerateKeyPair();
  const other = await x25519GenerateKeyPair();
  const message = randomBytes(33);
  const signature = xeddsaSign(privateKey, message);
  for (let bit = 0; bit < 512; bit += 7) {
    const altered = signature.slice();
    altered[bit >> 3]! ^= 1 << (bit & 7);
    assert(!(await xeddsaVerify(publicKey, message, altered)), `bit ${bit}`);
    assert(!referenceVerify(publicKey, message, altered));
  }
  const alteredMessage = message.slice();
  alteredMessage[0]! ^= 0x80;
  assert(!(await xeddsaVerify(publicKey, alteredMessage, signature)));
  assert(!(await xeddsaVerify(publicKey, message.subarray(1), signature)));
  assert(!(await xeddsaVerify(other.publicKey, message, signature)));
  assert(!(await xeddsaVerify(publicKey, message, signature.subarray(0, 63))));
  assert(!(await xeddsaVerify(publicKey.subarray(1), message, signature)));
});

Deno.test("XEdDSA: the spec's range checks (u < p, s < 2^253, u != -1)", async () => {
  const { publicKey, privateKey } = await x25519GenerateKeyPair();
  const message = randomBytes(10);
  const signature = xeddsaSign(privateKey, message);
  // u + p encodes the same field element non-canonically when it fits in 255 bits.
  const u = bytesToNumberLE(publicKey);
  if (u + Fp.ORDER < 2n ** 256n) {
    assert(!(await xeddsaVerify(numberToBytesLE(u + Fp.ORDER, 32), message, signature)));
  }
  const minusOne = numberToBytesLE(Fp.ORDER - 1n, 32);
  assert(!(await xeddsaVerify(minusOne, message, signature)));
  const bigS = signature.slice();
  bigS[63]! |= 0x20;
  assert(!(await xeddsaVerify(publicKey, message, bigS)));
  // s + q (< 2^253) passes the spec's check but is a malleated signature: refused (RFC 8032).
  const s = bytesToNumberLE(signature.subarray(32)) + Fn.ORDER;
  const malleated = concatBytes(signature.subarray(0, 32), numberToBytesLE(s, 32));
  assert(referenceVerify(publicKey, message, malleated));
  assert(!(await xeddsaVerify(publicKey, message, malleated)));
});

Deno.test("XEdDSA: randomness Z makes signatures differ; unclamped keys sign as clamped", async () => {
  const { publicKey, privateKey } = await x25519GenerateKeyPair();
  const message = randomBytes(40);
  const z = randomBytes(64);
  assertEquals(xeddsaSign(privateKey, message, z), xeddsaSign(privateKey, message, z));
  const other = xeddsaSign(privateKey, message);
  assert(!constantTimeEqual(other, xeddsaSign(privateKey, message, z)));
  assert(await xeddsaVerify(publicKey, message, other));
  const unclamped = privateKey.slice();
  unclamped[0]! |= 7;
  unclamped[31]! |= 0x80;
  assertEquals(xeddsaSign(unclamped, message, z), xeddsaSign(privateKey, message, z));
  expectCode(() => xeddsaSign(privateKey, message, randomBytes(32)), "invalid-argument");
});
