/**
 * XEdDSA signatures over X25519 keys, as specified in "The XEdDSA and VXEdDSA Signature Schemes"
 * (Signal, revision 1, 2016-10-20), section 2.3 (curve25519 parameters: hash = SHA-512, b = 256,
 * |p| = 255, |q| = 253).
 *
 * Interoperability with libsignal: libsignal's signer does not force the Edwards sign bit to 0 as
 * the spec's calculate_key_pair does; it carries that bit in the otherwise always-zero top bit of
 * the signature (bit 255 of s). Our signer follows the spec, so that bit is always 0 and libsignal
 * verifies our signatures unchanged. Our verifier reads the bit like libsignal does, so it also
 * accepts libsignal's signatures; for a spec signature (bit 0) it is exactly the spec's
 * xeddsa_verify.
 *
 * Verification runs through WebCrypto Ed25519: xeddsa_verify's final check, R == sB - hA with
 * h = SHA-512(R || A || M), is the Ed25519 equation for the Edwards key A = convert_mont(u).
 * RFC 8032 additionally rejects s >= q, which only ever refuses malleated signatures (an honest
 * XEdDSA signer reduces s mod q).
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { bytesToNumberLE, numberToBytesLE } from "@noble/curves/utils.js";
import {
  asBytes,
  type Bytes,
  clampX25519PrivateKey,
  concatBytes,
  ed25519Verify,
  randomBytes,
  sha512,
  wipe,
} from "./primitives.ts";
import { CryptoError } from "./errors.ts";

export const XEDDSA_SIGNATURE_BYTES = 64;
export const XEDDSA_RANDOM_BYTES = 64;

const { BASE } = ed25519.Point;
const Fp = ed25519.Point.Fp; // the field of p = 2^255 - 19
const Fq = ed25519.Point.Fn; // the scalars modulo the group order q

// hash_1(X) = SHA-512(2^256 - 1 - 1 || X), the 256-bit prefix encoded little-endian (spec §2.5).
const HASH1_PREFIX = new Uint8Array(32).fill(0xff);
HASH1_PREFIX[0] = 0xfe;

/**
 * calculate_key_pair(k) (spec §2.3): the Edwards key pair whose public key has sign bit 0.
 * Returns A's encoding and the scalar a with A = aB.
 */
function calculateKeyPair(privateKey: Uint8Array): { publicA: Uint8Array; a: bigint } {
  const clamped = clampX25519PrivateKey(privateKey);
  const k = Fq.create(bytesToNumberLE(clamped));
  wipe(clamped);
  const encodedE = BASE.multiply(k).toBytes();
  const signBit = encodedE[31]! >> 7;
  encodedE[31]! &= 0x7f; // A.s = 0: A is E or -E, which share E's y
  return { publicA: encodedE, a: signBit === 1 ? Fq.neg(k) : k };
}

/**
 * xeddsa_sign(k, M, Z) (spec §2.3). `privateKey` is an X25519 private key (clamped here as X25519
 * does); `random` is Z, 64 fresh random bytes (injectable only for tests).
 */
export function xeddsaSign(
  privateKey: Uint8Array,
  message: Uint8Array,
  random: Uint8Array = randomBytes(XEDDSA_RANDOM_BYTES),
): Bytes {
  if (random.length !== XEDDSA_RANDOM_BYTES) {
    throw new CryptoError("invalid-argument", "XEdDSA randomness must be 64 bytes");
  }
  const { publicA, a } = calculateKeyPair(privateKey);
  const aBytes = numberToBytesLE(a, 32);
  const hash1Input = concatBytes(HASH1_PREFIX, aBytes, message, random);
  const r = Fq.create(bytesToNumberLE(sha512(hash1Input)));
  wipe(aBytes, hash1Input);
  const capitalR = BASE.multiply(r).toBytes();
  const h = Fq.create(bytesToNumberLE(sha512(concatBytes(capitalR, publicA, message))));
  const s = Fq.add(r, Fq.mul(h, a));
  return concatBytes(capitalR, numberToBytesLE(s, 32));
}

/**
 * xeddsa_verify(u, M, (R || s)) (spec §2.3) for a 32-byte X25519 public key u. The sign bit of the
 * Edwards key is read from bit 255 of the signature (0 for spec signatures, see module comment).
 * Returns false for every invalid or malformed input.
 */
export async function xeddsaVerify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  if (publicKey.length !== 32 || signature.length !== XEDDSA_SIGNATURE_BYTES) return false;
  const u = bytesToNumberLE(publicKey);
  if (u >= Fp.ORDER) return false; // spec: reject u >= p
  const signBit = signature[63]! >> 7;
  const edSignature = new Uint8Array(signature);
  edSignature[63]! &= 0x7f;
  if ((edSignature[63]! & 0xe0) !== 0) return false; // spec: reject s >= 2^|q|
  const publicA = convertMont(u, signBit);
  if (publicA === undefined) return false;
  // Ed25519 decoding of A rejects a y that is not on the curve (the spec's on_curve check).
  return await ed25519Verify(publicA, asBytes(message), edSignature);
}

/** convert_mont(u) (spec §2.2): the Edwards encoding of y = (u - 1) / (u + 1) with a sign bit. */
function convertMont(u: bigint, signBit: number): Uint8Array | undefined {
  const denominator = Fp.add(u, Fp.ONE);
  if (Fp.is0(denominator)) return undefined; // u = -1 has no Edwards image
  const y = Fp.mul(Fp.sub(u, Fp.ONE), Fp.inv(denominator));
  const encoded = numberToBytesLE(y, 32);
  encoded[31]! |= signBit << 7;
  return encoded;
}
