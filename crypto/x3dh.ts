/**
 * Session key agreement: X3DH ("The X3DH Key Agreement Protocol", Signal, revision 1) and its
 * post-quantum extension PQXDH ("The PQXDH Key Agreement Protocol", Signal, revision 3), with
 * curve X25519, hash SHA-256 and, for PQXDH, ML-KEM-1024.
 *
 * Both sides compute
 *   DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)   [DH4 = DH(EK_A, OPK_B)]
 *   [SS = ML-KEM-1024 shared secret encapsulated to PQPK_B]
 *   SK = HKDF-SHA-256(salt = 32 zero bytes, IKM = F || DH1 || DH2 || DH3 [|| DH4] [|| SS], info, 32)
 * with F = 32 0xFF bytes and the info strings below, and AD = Encode(IK_A) || Encode(IK_B) (33-byte
 * encodings, see keys.ts). Guardyn's info strings (distinct from Signal's, so keys from the two
 * protocols can never collide):
 *   X3DH:  "Guardyn_X3DH_CURVE25519_SHA-256"
 *   PQXDH: "Guardyn_PQXDH_CURVE25519_SHA-256_ML-KEM-1024"
 *
 * Checks: the initiator verifies every prekey signature in the bundle (the signed prekey, the
 * KEM prekey and a signed one-time prekey, each signed by IK_B; one-time EC prekeys may come
 * unsigned, as in libsignal and the Guardyn API); every public key is validated (no
 * small-order points) and every DH output must be non-zero. The responder's prekey lookup and
 * one-time-key consumption live in session.ts, which owns the prekey store callbacks.
 */
import { ByteReader, ByteWriter } from "./codec.ts";
import { CryptoError } from "./errors.ts";
import {
  decodeKemPublicKey,
  decodePublicKey,
  ENCODED_PUBLIC_KEY_BYTES,
  encodePublicKey,
  type IdentityKeyPair,
  type PublicPrekey,
  verifyPublicPrekey,
} from "./keys.ts";
import {
  type Bytes,
  concatBytes,
  hkdfSha256,
  ML_KEM_1024_CIPHERTEXT_BYTES,
  mlKemDecapsulate,
  mlKemEncapsulate,
  type MlKemKeyPair,
  utf8,
  wipe,
  x25519,
  x25519GenerateKeyPair,
  type X25519KeyPair,
} from "./primitives.ts";

export const X3DH_INFO = "Guardyn_X3DH_CURVE25519_SHA-256";
export const PQXDH_INFO = "Guardyn_PQXDH_CURVE25519_SHA-256_ML-KEM-1024";
export const SHARED_SECRET_BYTES = 32;
export const ASSOCIATED_DATA_BYTES = 2 * ENCODED_PUBLIC_KEY_BYTES;

const X3DH_INFO_BYTES = utf8(X3DH_INFO);
const PQXDH_INFO_BYTES = utf8(PQXDH_INFO);
const DISCONTINUITY = new Uint8Array(32).fill(0xff); // F for X25519
const ZERO_SALT = new Uint8Array(32);

/** What the server hands out for one device of the recipient. */
export interface PrekeyBundle {
  /** IK_B, encoded (33 bytes). */
  readonly identityKey: Uint8Array;
  /** SPK_B, with its signature. */
  readonly signedPrekey: PublicPrekey;
  /** OPK_B, when one is left; its signature may be empty (the API serves it unsigned). */
  readonly oneTimePrekey?: PublicPrekey;
  /** PQPK_B: a one-time KEM prekey, or the last-resort one. Absent only for plain X3DH. */
  readonly kemPrekey?: PublicPrekey;
}

/** The key-agreement part of the initiator's first message. */
export interface InitialHandshake {
  /** IK_A, encoded (33 bytes). */
  readonly identityKey: Bytes;
  /** EK_A, encoded (33 bytes): the "base key" that identifies this handshake. */
  readonly baseKey: Bytes;
  readonly signedPrekeyId: number;
  readonly oneTimePrekeyId?: number;
  readonly kemPrekeyId?: number;
  /** CT, present exactly when kemPrekeyId is. */
  readonly kemCiphertext?: Bytes;
}

/** The agreed secret and the associated data both sides bind into every message. */
export interface HandshakeSecret {
  /** SK (32 bytes): the Double Ratchet's initial root key. */
  readonly sharedSecret: Bytes;
  /** AD = Encode(IK_A) || Encode(IK_B). */
  readonly associatedData: Bytes;
}

export interface HandshakeOptions {
  /** Refuse plain X3DH (a bundle or message without a KEM prekey). Default true. */
  readonly requirePostQuantum?: boolean;
}

/** The initiator's result: the secret, the message fields to send, and SPK_B (raw). */
export interface InitiatorHandshake extends HandshakeSecret {
  readonly initial: InitialHandshake;
  /** Bob's signed prekey, raw: his first ratchet public key. */
  readonly theirSignedPrekey: Bytes;
}

function deriveSecret(dhOutputs: Uint8Array[], kemSecret: Uint8Array | undefined): Bytes {
  const ikm = concatBytes(DISCONTINUITY, ...dhOutputs, ...(kemSecret ? [kemSecret] : []));
  const info = kemSecret ? PQXDH_INFO_BYTES : X3DH_INFO_BYTES;
  const secret = hkdfSha256(ikm, ZERO_SALT, info, SHARED_SECRET_BYTES);
  wipe(ikm, ...dhOutputs, ...(kemSecret ? [kemSecret] : []));
  return secret;
}

/**
 * The initiator (Alice) side: verifies Bob's bundle, then computes SK and the first message's
 * handshake fields. Throws CryptoError on a bad signature, key or policy violation.
 */
export async function initiateHandshake(
  ourIdentity: IdentityKeyPair,
  bundle: PrekeyBundle,
  options: HandshakeOptions = {},
): Promise<InitiatorHandshake> {
  const requirePostQuantum = options.requirePostQuantum ?? true;
  if (requirePostQuantum && bundle.kemPrekey === undefined) {
    throw new CryptoError("post-quantum-required", "the prekey bundle has no KEM prekey");
  }
  const theirIdentity = decodePublicKey(bundle.identityKey);
  const theirSignedPrekey = decodePublicKey(bundle.signedPrekey.publicKey);
  const theirOneTimePrekey = bundle.oneTimePrekey &&
    decodePublicKey(bundle.oneTimePrekey.publicKey);
  const theirKemPrekey = bundle.kemPrekey && decodeKemPublicKey(bundle.kemPrekey.publicKey);

  // One-time EC prekeys travel unsigned in the API, as in libsignal (a substituted one only adds
  // a DH the attacker knows to SK); a signature is still checked when one is given.
  const signedOneTime = bundle.oneTimePrekey?.signature.length ? bundle.oneTimePrekey : undefined;
  const signedPrekeys = [bundle.signedPrekey, signedOneTime, bundle.kemPrekey]
    .filter((p): p is PublicPrekey => p !== undefined);
  // Independent steps run concurrently; nothing derived is used unless every signature verifies.
  const [valid, ephemeral, dh1, kem] = await Promise.all([
    Promise.all(signedPrekeys.map((p) => verifyPublicPrekey(bundle.identityKey, p))),
    x25519GenerateKeyPair(),
    x25519(ourIdentity.privateKey, theirSignedPrekey),
    theirKemPrekey && mlKemEncapsulate(theirKemPrekey),
  ]);
  if (valid.includes(false)) {
    throw new CryptoError("invalid-signature", "a prekey signature in the bundle does not verify");
  }
  const [dh2, dh3, dh4] = await Promise.all([
    x25519(ephemeral.privateKey, theirIdentity),
    x25519(ephemeral.privateKey, theirSignedPrekey),
    theirOneTimePrekey && x25519(ephemeral.privateKey, theirOneTimePrekey),
  ]);
  const sharedSecret = deriveSecret(
    dh4 ? [dh1, dh2, dh3, dh4] : [dh1, dh2, dh3],
    kem?.sharedSecret,
  );
  wipe(ephemeral.privateKey);

  const identityKey = encodePublicKey(ourIdentity.publicKey);
  return {
    sharedSecret,
    associatedData: concatBytes(identityKey, bundle.identityKey),
    theirSignedPrekey,
    initial: {
      identityKey,
      baseKey: encodePublicKey(ephemeral.publicKey),
      signedPrekeyId: bundle.signedPrekey.id,
      oneTimePrekeyId: bundle.oneTimePrekey?.id,
      kemPrekeyId: bundle.kemPrekey?.id,
      kemCiphertext: kem?.ciphertext,
    },
  };
}

/** The responder's private keys named by an initial handshake, looked up by the caller. */
export interface ResponderKeys {
  readonly signedPrekey: X25519KeyPair;
  readonly oneTimePrekey?: X25519KeyPair;
  readonly kemPrekey?: MlKemKeyPair;
}

/**
 * The responder (Bob) side: recomputes SK from the initial handshake and his private keys.
 * A tampered handshake yields a different SK, which the first message's AEAD then rejects.
 */
export async function respondToHandshake(
  ourIdentity: IdentityKeyPair,
  initial: InitialHandshake,
  keys: ResponderKeys,
  options: HandshakeOptions = {},
): Promise<HandshakeSecret> {
  if ((options.requirePostQuantum ?? true) && initial.kemCiphertext === undefined) {
    throw new CryptoError("post-quantum-required", "the initial message has no KEM ciphertext");
  }
  if ((initial.oneTimePrekeyId !== undefined) !== (keys.oneTimePrekey !== undefined)) {
    throw new CryptoError("invalid-argument", "one-time prekey does not match the handshake");
  }
  if ((initial.kemCiphertext !== undefined) !== (keys.kemPrekey !== undefined)) {
    throw new CryptoError("invalid-argument", "KEM prekey does not match the handshake");
  }
  const theirIdentity = decodePublicKey(initial.identityKey);
  const theirBaseKey = decodePublicKey(initial.baseKey);
  const [dh1, dh2, dh3, dh4, kemSecret] = await Promise.all([
    x25519(keys.signedPrekey.privateKey, theirIdentity),
    x25519(ourIdentity.privateKey, theirBaseKey),
    x25519(keys.signedPrekey.privateKey, theirBaseKey),
    keys.oneTimePrekey && x25519(keys.oneTimePrekey.privateKey, theirBaseKey),
    keys.kemPrekey && initial.kemCiphertext &&
    mlKemDecapsulate(keys.kemPrekey.seed, initial.kemCiphertext),
  ]);
  return {
    sharedSecret: deriveSecret(dh4 ? [dh1, dh2, dh3, dh4] : [dh1, dh2, dh3], kemSecret),
    associatedData: concatBytes(initial.identityKey, encodePublicKey(ourIdentity.publicKey)),
  };
}

// ---------------------------------------------------------------------------------------------
// Encoding of the initial handshake (inside a prekey message, see session.ts)
//
//   identity key (33) || base key (33) || signed prekey id (u32) || flags (u8)
//   || [one-time prekey id (u32)]               if flags & 1
//   || [KEM prekey id (u32) || KEM ciphertext (1568)]   if flags & 2

const HAS_ONE_TIME_PREKEY = 1;
const HAS_KEM_PREKEY = 2;

export function encodeInitialHandshake(initial: InitialHandshake, writer: ByteWriter): void {
  if ((initial.kemPrekeyId === undefined) !== (initial.kemCiphertext === undefined)) {
    throw new CryptoError("invalid-argument", "KEM prekey id and ciphertext go together");
  }
  const flags = (initial.oneTimePrekeyId !== undefined ? HAS_ONE_TIME_PREKEY : 0) |
    (initial.kemPrekeyId !== undefined ? HAS_KEM_PREKEY : 0);
  writer.bytes(initial.identityKey).bytes(initial.baseKey).u32(initial.signedPrekeyId).u8(flags);
  if (initial.oneTimePrekeyId !== undefined) writer.u32(initial.oneTimePrekeyId);
  if (initial.kemPrekeyId !== undefined && initial.kemCiphertext !== undefined) {
    writer.u32(initial.kemPrekeyId).bytes(initial.kemCiphertext);
  }
}

/** Reads an initial handshake; keys are validated (type byte, canonical, not small order). */
export function decodeInitialHandshake(reader: ByteReader): InitialHandshake {
  const identityKey = reader.bytes(ENCODED_PUBLIC_KEY_BYTES);
  const baseKey = reader.bytes(ENCODED_PUBLIC_KEY_BYTES);
  decodePublicKey(identityKey);
  decodePublicKey(baseKey);
  const signedPrekeyId = reader.u32();
  const flags = reader.u8();
  if ((flags & ~(HAS_ONE_TIME_PREKEY | HAS_KEM_PREKEY)) !== 0) {
    throw new CryptoError("malformed", "initial handshake has unknown flags");
  }
  const oneTimePrekeyId = flags & HAS_ONE_TIME_PREKEY ? reader.u32() : undefined;
  let kemPrekeyId: number | undefined;
  let kemCiphertext: Bytes | undefined;
  if (flags & HAS_KEM_PREKEY) {
    kemPrekeyId = reader.u32();
    kemCiphertext = reader.bytes(ML_KEM_1024_CIPHERTEXT_BYTES);
  }
  return { identityKey, baseKey, signedPrekeyId, oneTimePrekeyId, kemPrekeyId, kemCiphertext };
}
