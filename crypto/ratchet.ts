/**
 * The Double Ratchet ("The Double Ratchet Algorithm", Signal, revision 4), section 3 with the
 * recommended cryptographic functions of section 5.2, except that ENCRYPT is the AEAD
 * ChaCha20-Poly1305 (RFC 8439):
 *
 * - KDF_RK(rk, dh_out) = HKDF-SHA-256(salt = rk, IKM = dh_out, info = "Guardyn_Ratchet", 64)
 *   split into the new root key (first 32 bytes) and a chain key (last 32 bytes).
 * - KDF_CK(ck): message key = HMAC-SHA-256(ck, 0x01), next chain key = HMAC-SHA-256(ck, 0x02).
 * - ENCRYPT(mk, plaintext, AD || header): HKDF-SHA-256(salt = 32 zero bytes, IKM = mk,
 *   info = "Guardyn_MessageKeys", 44) gives a 32-byte key and a 12-byte nonce; ChaCha20-Poly1305
 *   encrypts with associated data AD || header. Each message key is used once, so the derived
 *   nonce never repeats under a key. ChaCha20-Poly1305 rather than AES-256-GCM: it runs
 *   synchronously in constant time in pure JS (JS AES uses lookup tables; WebCrypto's AES is
 *   asynchronous, and its thread hop was most of the cost of a short message).
 *
 * Message (the header is everything before the ciphertext, and is authenticated):
 *   0x01 (type: ratchet message, version 1)
 *   || sender's ratchet public key, encoded (33 bytes: 0x05 || u)
 *   || PN: length of the sender's previous sending chain (u32, big-endian)
 *   || N: message number in the current sending chain (u32, big-endian)
 *   || ChaCha20-Poly1305 ciphertext || 16-byte tag
 *
 * Out-of-order delivery: up to MAX_SKIP keys are skipped per chain and kept in a bounded,
 * expiring store (skipped_keys.ts). decrypt() commits nothing unless the message authenticates,
 * as the spec requires, so forged, replayed or foreign messages leave the state untouched.
 *
 * The state is mutated in place. ratchetEncrypt takes its message key before its first await, so
 * it may run at any time; ratchetDecrypt calls must not overlap one another (session.ts queues
 * them).
 */
import { ByteReader, ByteWriter, MAX_U32 } from "./codec.ts";
import { CryptoError } from "./errors.ts";
import { decodePublicKey, ENCODED_PUBLIC_KEY_BYTES, encodePublicKey } from "./keys.ts";
import {
  type Bytes,
  CHACHA20_POLY1305_TAG_BYTES,
  chachaPolyDecrypt,
  chachaPolyEncrypt,
  concatBytes,
  constantTimeEqual,
  hkdfSha256,
  hkdfSha256WithFixedSalt,
  hmacSha256Pair,
  utf8,
  wipe,
  x25519,
  X25519_KEY_BYTES,
  x25519GenerateKeyPair,
  x25519GeneratePrivateKey,
  type X25519KeyPair,
  x25519PublicKey,
} from "./primitives.ts";
import { type SkippedKey, SkippedKeyStore } from "./skipped_keys.ts";
import { ASSOCIATED_DATA_BYTES, SHARED_SECRET_BYTES } from "./x3dh.ts";

export const RATCHET_MESSAGE_TYPE = 0x01;
export const RATCHET_HEADER_BYTES = 1 + ENCODED_PUBLIC_KEY_BYTES + 4 + 4;
/**
 * Most message keys one incoming message may make us derive, across the old and the new chain
 * together: a forged message costs at most this many HMAC pairs before its AEAD fails. 1,000
 * covers any real gap (a device offline for a long conversation) and costs ~1 ms.
 */
export const MAX_SKIP = 1000;
/**
 * Skipped keys a session may derive per minute for messages that then fail to authenticate.
 * Keys derived for a message that opens are given back, so honest out-of-order traffic never
 * runs out; a flood of forged messages is stopped after two messages' worth of work a minute
 * (2,000 HMAC pairs, ~2 ms of CPU per session per minute) instead of 2 × MAX_SKIP each.
 * The budget lives in memory only: a restart refills it.
 */
export const SKIP_BUDGET_PER_MINUTE = 2 * MAX_SKIP;
const SKIP_BUDGET_WINDOW_MS = 60_000;
/** Largest plaintext of one message. */
export const MAX_PLAINTEXT_BYTES = 256 * 1024;
export const MAX_RATCHET_MESSAGE_BYTES = RATCHET_HEADER_BYTES + MAX_PLAINTEXT_BYTES +
  CHACHA20_POLY1305_TAG_BYTES;

const ROOT_INFO = utf8("Guardyn_Ratchet");
const MESSAGE_KEY_INFO = utf8("Guardyn_MessageKeys");
const ZERO_SALT = new Uint8Array(32);
const MESSAGE_KEY_SEED = new Uint8Array([0x01]);
const CHAIN_KEY_SEED = new Uint8Array([0x02]);
const STATE_VERSION = 1;

export interface RatchetState {
  /** AD from the key agreement, bound into every message. */
  readonly associatedData: Bytes;
  rootKey: Bytes;
  /** DHs: our current ratchet key pair. */
  sendingRatchetKey: X25519KeyPair;
  /** DHr: the peer's current ratchet public key (raw), null until the first message. */
  receivingRatchetKey: Bytes | null;
  sendingChainKey: Bytes | null;
  receivingChainKey: Bytes | null;
  /** Ns, Nr, PN. */
  sendCount: number;
  receiveCount: number;
  previousSendCount: number;
  /** DH ratchet steps taken on receive: the clock of skipped-key expiry. */
  receivingSteps: number;
  readonly skipped: SkippedKeyStore;
  /** Skipped keys derived for unauthenticated messages in the current minute (not persisted). */
  skipWork?: { windowStart: number; spent: number };
}

/** Charges `keys` derivations to the session's minute budget, or refuses before any work. */
function chargeSkipWork(state: RatchetState, keys: number, now: number): void {
  if (keys === 0) return;
  let work = state.skipWork;
  if (!work || now - work.windowStart >= SKIP_BUDGET_WINDOW_MS || now < work.windowStart) {
    work = state.skipWork = { windowStart: now, spent: 0 };
  }
  if (work.spent + keys > SKIP_BUDGET_PER_MINUTE) {
    throw new CryptoError(
      "too-many-skipped-messages",
      `skipped-key budget of ${SKIP_BUDGET_PER_MINUTE} per minute is spent by messages that ` +
        "failed to authenticate",
    );
  }
  work.spent += keys;
}

function refundSkipWork(state: RatchetState, keys: number): void {
  if (state.skipWork) state.skipWork.spent = Math.max(0, state.skipWork.spent - keys);
}

function kdfRk(rootKey: Uint8Array, dhOutput: Uint8Array): [Bytes, Bytes] {
  const out = hkdfSha256(dhOutput, rootKey, ROOT_INFO, 64);
  wipe(dhOutput);
  return [out.slice(0, 32), out.slice(32)];
}

function kdfCk(chainKey: Uint8Array): [messageKey: Bytes, nextChainKey: Bytes] {
  return hmacSha256Pair(chainKey, MESSAGE_KEY_SEED, CHAIN_KEY_SEED);
}

const messageKeyHkdf = hkdfSha256WithFixedSalt(ZERO_SALT, MESSAGE_KEY_INFO);

function messageCipherKeys(messageKey: Uint8Array): { key: Bytes; nonce: Bytes } {
  const out = messageKeyHkdf(messageKey, 44);
  return { key: out.subarray(0, 32), nonce: out.subarray(32) };
}

function checkInit(sharedSecret: Uint8Array, associatedData: Uint8Array): void {
  if (sharedSecret.length !== SHARED_SECRET_BYTES) {
    throw new CryptoError("invalid-argument", "shared secret must be 32 bytes");
  }
  if (associatedData.length !== ASSOCIATED_DATA_BYTES) {
    throw new CryptoError("invalid-argument", "associated data must be 66 bytes");
  }
}

/**
 * RatchetInitAlice: the initiator starts with Bob's signed prekey as his ratchet key and
 * performs the first DH ratchet step to get a sending chain.
 */
export async function initRatchetAsInitiator(
  sharedSecret: Uint8Array,
  associatedData: Uint8Array,
  theirRatchetKey: Uint8Array,
  ourFirstRatchetKey?: X25519KeyPair,
): Promise<RatchetState> {
  checkInit(sharedSecret, associatedData);
  // A fresh key pair; the caller may generate it ahead, in parallel with the key agreement.
  const sendingRatchetKey = ourFirstRatchetKey ?? await x25519GenerateKeyPair();
  const [rootKey, sendingChainKey] = kdfRk(
    sharedSecret,
    await x25519(sendingRatchetKey.privateKey, theirRatchetKey),
  );
  return {
    associatedData: new Uint8Array(associatedData),
    rootKey,
    sendingRatchetKey,
    receivingRatchetKey: new Uint8Array(theirRatchetKey),
    sendingChainKey,
    receivingChainKey: null,
    sendCount: 0,
    receiveCount: 0,
    previousSendCount: 0,
    receivingSteps: 0,
    skipped: new SkippedKeyStore(),
  };
}

/** RatchetInitBob: the responder's first ratchet key pair is his signed prekey. */
export function initRatchetAsResponder(
  sharedSecret: Uint8Array,
  associatedData: Uint8Array,
  ourRatchetKey: X25519KeyPair,
): RatchetState {
  checkInit(sharedSecret, associatedData);
  return {
    associatedData: new Uint8Array(associatedData),
    rootKey: new Uint8Array(sharedSecret),
    sendingRatchetKey: {
      publicKey: new Uint8Array(ourRatchetKey.publicKey),
      privateKey: new Uint8Array(ourRatchetKey.privateKey),
    },
    receivingRatchetKey: null,
    sendingChainKey: null,
    receivingChainKey: null,
    sendCount: 0,
    receiveCount: 0,
    previousSendCount: 0,
    receivingSteps: 0,
    skipped: new SkippedKeyStore(),
  };
}

/** True once the state can encrypt (the responder must first receive a message). */
export function canEncrypt(state: RatchetState): boolean {
  return state.sendingChainKey !== null;
}

/**
 * RatchetEncrypt: returns the encoded message (header || ciphertext). Synchronous inside (kept
 * behind a Promise so the API does not change if the AEAD moves back to an async backend).
 */
export function ratchetEncrypt(state: RatchetState, plaintext: Uint8Array): Promise<Bytes> {
  return Promise.try(() => encryptNow(state, plaintext));
}

function encryptNow(state: RatchetState, plaintext: Uint8Array): Bytes {
  if (plaintext.length > MAX_PLAINTEXT_BYTES) {
    throw new CryptoError("invalid-argument", `plaintext exceeds ${MAX_PLAINTEXT_BYTES} bytes`);
  }
  if (state.sendingChainKey === null) {
    throw new CryptoError("invalid-state", "cannot encrypt before the first incoming message");
  }
  if (state.sendCount === MAX_U32) {
    throw new CryptoError("invalid-state", "sending chain exhausted");
  }
  // Advance the chain first so concurrent callers never share a message key.
  const [messageKey, nextChainKey] = kdfCk(state.sendingChainKey);
  const header = encodeHeader(
    state.sendingRatchetKey.publicKey,
    state.previousSendCount,
    state.sendCount,
  );
  const usedChainKey = state.sendingChainKey;
  state.sendingChainKey = nextChainKey;
  state.sendCount += 1;
  wipe(usedChainKey); // forward secrecy: an old chain key must not outlive its step

  const { key, nonce } = messageCipherKeys(messageKey);
  const ciphertext = chachaPolyEncrypt(
    key,
    nonce,
    plaintext,
    concatBytes(state.associatedData, header),
  );
  wipe(messageKey, key);
  return concatBytes(header, ciphertext);
}

/**
 * RatchetDecrypt. `now` (milliseconds) dates skipped keys stored by this call and expires old
 * ones. Throws CryptoError: "decryption-failed" (tampered, foreign), "duplicate-message"
 * (replayed or expired), "too-many-skipped-messages", "malformed", "invalid-key".
 */
export async function ratchetDecrypt(
  state: RatchetState,
  message: Uint8Array,
  now: number,
): Promise<Bytes> {
  if (!Number.isSafeInteger(now) || now < 0) {
    throw new CryptoError("invalid-argument", "now must be a non-negative integer (ms)");
  }
  const { ratchetKey, previousCount, count, header, ciphertext } = decodeMessage(message);
  const associatedData = concatBytes(state.associatedData, header);
  state.skipped.purge(state.receivingSteps, now);

  const skipped = state.skipped.get(ratchetKey, count);
  if (skipped !== undefined) {
    const plaintext = await openMessage(skipped.messageKey, ciphertext, associatedData);
    state.skipped.delete(skipped);
    return plaintext;
  }

  // Work on copies; commit only after the message authenticates. Only the DH ratchet step
  // touches the sending side, and it reads the sending counters at commit time, so an encrypt
  // that runs while this call awaits is never undone.
  const newSkipped: SkippedKey[] = [];
  let receivingChainKey = state.receivingChainKey;
  let receiveCount = state.receiveCount;
  let receivingSteps = state.receivingSteps;
  let ratchetStep:
    | { rootKey: Bytes; sendingRatchetKey: X25519KeyPair; sendingChainKey: Bytes }
    | undefined;
  const isNewChain = state.receivingRatchetKey === null ||
    !constantTimeEqual(ratchetKey, state.receivingRatchetKey);

  // Bound the work before doing any: the keys this message would make us derive, both chains.
  const oldChainSkips =
    isNewChain && receivingChainKey !== null && state.receivingRatchetKey !== null
      ? Math.max(0, previousCount - receiveCount)
      : 0;
  const newChainSkips = isNewChain ? count : Math.max(0, count - receiveCount);
  const skipsNeeded = oldChainSkips + newChainSkips;
  if (skipsNeeded > MAX_SKIP) {
    throw new CryptoError("too-many-skipped-messages", `more than ${MAX_SKIP} messages skipped`);
  }
  chargeSkipWork(state, skipsNeeded, now);

  if (isNewChain) {
    if (receivingChainKey !== null && state.receivingRatchetKey !== null) {
      receivingChainKey = skipMessageKeys(
        receivingChainKey,
        receiveCount,
        previousCount,
        { ratchetKey: state.receivingRatchetKey, step: receivingSteps, now },
        newSkipped,
      );
    }
    // DHRatchet (spec section 3.5). Its three X25519 operations (the receiving DH, the new public
    // key and the sending DH) depend only on the new private key, so they run at once: one wait
    // for WebCrypto's worker threads instead of two.
    if (receivingSteps === MAX_U32) throw new CryptoError("invalid-state", "ratchet exhausted");
    receivingSteps += 1;
    receiveCount = 0;
    const newPrivateKey = x25519GeneratePrivateKey();
    const [receivingSecret, newPublicKey, sendingSecret] = await Promise.all([
      x25519(state.sendingRatchetKey.privateKey, ratchetKey),
      x25519PublicKey(newPrivateKey),
      x25519(newPrivateKey, ratchetKey),
    ]);
    const sendingRatchetKey = { privateKey: newPrivateKey, publicKey: newPublicKey };
    let rootKey: Bytes;
    [rootKey, receivingChainKey] = kdfRk(state.rootKey, receivingSecret);
    const [nextRootKey, sendingChainKey] = kdfRk(rootKey, sendingSecret);
    ratchetStep = { rootKey: nextRootKey, sendingRatchetKey, sendingChainKey };
  } else if (count < receiveCount) {
    throw new CryptoError("duplicate-message", "message already received or its key expired");
  }
  if (receivingChainKey === null) {
    throw new CryptoError("invalid-state", "no receiving chain");
  }
  receivingChainKey = skipMessageKeys(
    receivingChainKey,
    receiveCount,
    count,
    { ratchetKey, step: receivingSteps, now },
    newSkipped,
  );
  const [messageKey, nextChainKey] = kdfCk(receivingChainKey);
  const plaintext = await openMessage(messageKey, ciphertext, associatedData);
  wipe(messageKey);
  refundSkipWork(state, skipsNeeded);

  // Commit, wiping what the step replaced (best effort in JS, as the spec asks).
  if (ratchetStep !== undefined) {
    wipe(state.rootKey, state.sendingRatchetKey.privateKey);
    if (state.sendingChainKey !== null) wipe(state.sendingChainKey);
    state.rootKey = ratchetStep.rootKey;
    state.previousSendCount = state.sendCount; // PN = Ns
    state.sendCount = 0;
    state.sendingRatchetKey = ratchetStep.sendingRatchetKey;
    state.sendingChainKey = ratchetStep.sendingChainKey;
    state.receivingRatchetKey = ratchetKey;
    state.receivingSteps = receivingSteps;
  }
  if (state.receivingChainKey !== null) wipe(state.receivingChainKey);
  state.receivingChainKey = nextChainKey;
  state.receiveCount = count + 1;
  state.skipped.addAll(newSkipped);
  state.skipped.purge(receivingSteps, now);
  return plaintext;
}

/** SkipMessageKeys: derives the keys of messages from..until-1 and returns the advanced chain. */
function skipMessageKeys(
  chainKey: Bytes,
  from: number,
  until: number,
  origin: { ratchetKey: Bytes; step: number; now: number },
  into: SkippedKey[],
): Bytes {
  if (until - from > MAX_SKIP) {
    throw new CryptoError("too-many-skipped-messages", `more than ${MAX_SKIP} messages skipped`);
  }
  let chain = chainKey;
  for (let n = from; n < until; n++) {
    const [messageKey, next] = kdfCk(chain);
    into.push({
      ratchetKey: origin.ratchetKey,
      n,
      messageKey,
      step: origin.step,
      storedAt: origin.now,
    });
    chain = next;
  }
  return chain;
}

async function openMessage(
  messageKey: Uint8Array,
  ciphertext: Uint8Array,
  associatedData: Uint8Array,
): Promise<Bytes> {
  const { key, nonce } = messageCipherKeys(messageKey);
  try {
    return await Promise.resolve(chachaPolyDecrypt(key, nonce, ciphertext, associatedData));
  } finally {
    wipe(key);
  }
}

function encodeHeader(ratchetKey: Uint8Array, previousCount: number, count: number): Bytes {
  return new ByteWriter(RATCHET_HEADER_BYTES).u8(RATCHET_MESSAGE_TYPE)
    .bytes(encodePublicKey(ratchetKey)).u32(previousCount).u32(count).finish();
}

interface DecodedMessage {
  ratchetKey: Bytes;
  previousCount: number;
  count: number;
  header: Uint8Array;
  ciphertext: Uint8Array;
}

function decodeMessage(message: Uint8Array): DecodedMessage {
  if (message.length > MAX_RATCHET_MESSAGE_BYTES) {
    throw new CryptoError("malformed", "ratchet message is too large");
  }
  if (message.length < RATCHET_HEADER_BYTES + CHACHA20_POLY1305_TAG_BYTES) {
    throw new CryptoError("malformed", "ratchet message is truncated");
  }
  const reader = new ByteReader(message, "ratchet message");
  const type = reader.u8();
  if (type !== RATCHET_MESSAGE_TYPE) {
    throw new CryptoError("unsupported-version", `message type ${type} is not a ratchet message`);
  }
  const ratchetKey = decodePublicKey(reader.bytes(ENCODED_PUBLIC_KEY_BYTES));
  const previousCount = reader.u32();
  const count = reader.u32();
  return {
    ratchetKey,
    previousCount,
    count,
    header: message.subarray(0, RATCHET_HEADER_BYTES),
    ciphertext: message.subarray(RATCHET_HEADER_BYTES),
  };
}

// ---------------------------------------------------------------------------------------------
// State serialization
//
//   version (u8 = 1) || AD (66) || RK (32) || DHs public (32) || DHs private (32)
//   || flags (u8: 1 = DHr, 2 = CKs, 4 = CKr present) || [DHr (32)] || [CKs (32)] || [CKr (32)]
//   || Ns || Nr || PN || receiving steps (u32 each)
//   || skipped keys: count (u32) then per key: ratchet key (32) || N (u32) || message key (32)
//      || step (u32) || stored-at ms (u64), oldest first

const HAS_RECEIVING_KEY = 1;
const HAS_SENDING_CHAIN = 2;
const HAS_RECEIVING_CHAIN = 4;

export function writeRatchetState(state: RatchetState, writer: ByteWriter): void {
  const flags = (state.receivingRatchetKey ? HAS_RECEIVING_KEY : 0) |
    (state.sendingChainKey ? HAS_SENDING_CHAIN : 0) |
    (state.receivingChainKey ? HAS_RECEIVING_CHAIN : 0);
  writer.u8(STATE_VERSION).bytes(state.associatedData).bytes(state.rootKey)
    .bytes(state.sendingRatchetKey.publicKey).bytes(state.sendingRatchetKey.privateKey).u8(flags);
  if (state.receivingRatchetKey) writer.bytes(state.receivingRatchetKey);
  if (state.sendingChainKey) writer.bytes(state.sendingChainKey);
  if (state.receivingChainKey) writer.bytes(state.receivingChainKey);
  writer.u32(state.sendCount).u32(state.receiveCount).u32(state.previousSendCount)
    .u32(state.receivingSteps);
  state.skipped.write(writer);
}

export function readRatchetState(reader: ByteReader): RatchetState {
  const version = reader.u8();
  if (version !== STATE_VERSION) {
    throw new CryptoError("unsupported-version", `ratchet state version ${version} is unknown`);
  }
  const associatedData = reader.bytes(ASSOCIATED_DATA_BYTES);
  const rootKey = reader.bytes(32);
  const sendingRatchetKey = {
    publicKey: reader.bytes(X25519_KEY_BYTES),
    privateKey: reader.bytes(X25519_KEY_BYTES),
  };
  const flags = reader.u8();
  if ((flags & ~(HAS_RECEIVING_KEY | HAS_SENDING_CHAIN | HAS_RECEIVING_CHAIN)) !== 0) {
    throw new CryptoError("malformed", "ratchet state has unknown flags");
  }
  const receivingRatchetKey = flags & HAS_RECEIVING_KEY ? reader.bytes(X25519_KEY_BYTES) : null;
  const sendingChainKey = flags & HAS_SENDING_CHAIN ? reader.bytes(32) : null;
  const receivingChainKey = flags & HAS_RECEIVING_CHAIN ? reader.bytes(32) : null;
  return {
    associatedData,
    rootKey,
    sendingRatchetKey,
    receivingRatchetKey,
    sendingChainKey,
    receivingChainKey,
    sendCount: reader.u32(),
    receiveCount: reader.u32(),
    previousSendCount: reader.u32(),
    receivingSteps: reader.u32(),
    skipped: SkippedKeyStore.read(reader),
  };
}

export function serializeRatchetState(state: RatchetState): Bytes {
  const writer = new ByteWriter(512);
  writeRatchetState(state, writer);
  return writer.finish();
}

export function deserializeRatchetState(bytes: Uint8Array): RatchetState {
  const reader = new ByteReader(bytes, "ratchet state");
  const state = readRatchetState(reader);
  reader.end();
  return state;
}
