/**
 * A pairwise E2EE session: PQXDH (or X3DH) key agreement followed by the Double Ratchet, as in
 * the Double Ratchet spec, section 7.1 ("Integration with X3DH"): SK becomes the initial root key,
 * AD binds both identities into every message, and Bob's signed prekey is his first ratchet key.
 *
 * Wire format of what Session.encrypt returns:
 * - ratchet message: see ratchet.ts (type byte 0x01);
 * - prekey message (type byte 0x02), sent by the initiator until the first reply arrives:
 *     0x02 || initial handshake (see x3dh.ts) || ratchet message
 *   The handshake fields are not in the AEAD's associated data but determine SK, so tampering with
 *   any of them makes the embedded ratchet message fail to decrypt.
 *
 * Replay of an initial message: when the bundle had a one-time prekey, the responder's store
 * refuses its second use. With only the signed prekey and a last-resort KEM key, X3DH/PQXDH
 * cannot detect a replay by itself (X3DH spec, section 4.2): callers should refuse a second
 * session with the same `baseKey` from the same identity.
 */
import { ByteReader, ByteWriter } from "./codec.ts";
import { CryptoError } from "./errors.ts";
import { decodePublicKey, ENCODED_PUBLIC_KEY_BYTES, type IdentityKeyPair } from "./keys.ts";
import {
  type Bytes,
  constantTimeEqual,
  type MlKemKeyPair,
  x25519GenerateKeyPair,
  type X25519KeyPair,
} from "./primitives.ts";
import {
  initRatchetAsInitiator,
  initRatchetAsResponder,
  MAX_RATCHET_MESSAGE_BYTES,
  RATCHET_MESSAGE_TYPE,
  ratchetDecrypt,
  ratchetEncrypt,
  type RatchetState,
  readRatchetState,
  writeRatchetState,
} from "./ratchet.ts";
import {
  decodeInitialHandshake,
  encodeInitialHandshake,
  type HandshakeOptions,
  type InitialHandshake,
  initiateHandshake,
  type PrekeyBundle,
  respondToHandshake,
} from "./x3dh.ts";

export const PREKEY_MESSAGE_TYPE = 0x02;
/** A prekey message adds at most the initial handshake (< 2 KiB) to a ratchet message. */
export const MAX_SESSION_MESSAGE_BYTES = MAX_RATCHET_MESSAGE_BYTES + 2048;
const SESSION_VERSION = 1;
const ROLE_INITIATOR = 1;
const ROLE_RESPONDER = 2;

type MaybePromise<T> = T | Promise<T>;

/**
 * The responder's prekey store, as callbacks (the library does no I/O). Lookups must not consume;
 * `consumeOneTimePrekeys` is called only after the first message has authenticated, so forged
 * messages cannot burn keys.
 */
export interface PrekeyStore {
  signedPrekey(id: number): MaybePromise<X25519KeyPair | undefined>;
  /** An unused one-time EC prekey, or undefined if unknown or already used. */
  oneTimePrekey(id: number): MaybePromise<X25519KeyPair | undefined>;
  /** A KEM prekey (one-time and unused, or the last-resort one), or undefined. */
  kemPrekey(id: number): MaybePromise<MlKemKeyPair | undefined>;
  /**
   * Atomically marks the named one-time keys used (a last-resort KEM key stays). Returns false if
   * any of them was already used, which rejects the message as a replay.
   */
  consumeOneTimePrekeys(ids: {
    oneTimePrekeyId?: number;
    kemPrekeyId?: number;
  }): MaybePromise<boolean>;
}

export type MessageType = "prekey" | "ratchet";

/** The type of an encrypted session message, to route it to acceptSession or a Session. */
export function messageType(message: Uint8Array): MessageType {
  if (message[0] === PREKEY_MESSAGE_TYPE) return "prekey";
  if (message[0] === RATCHET_MESSAGE_TYPE) return "ratchet";
  throw new CryptoError("unsupported-version", "unknown session message type");
}

interface PrekeyMessage {
  handshake: InitialHandshake;
  ratchetMessage: Bytes;
}

function decodePrekeyMessage(message: Uint8Array): PrekeyMessage {
  if (message.length > MAX_SESSION_MESSAGE_BYTES) {
    throw new CryptoError("malformed", "prekey message is too large");
  }
  const reader = new ByteReader(message, "prekey message");
  if (reader.u8() !== PREKEY_MESSAGE_TYPE) {
    throw new CryptoError("unsupported-version", "not a prekey message");
  }
  const handshake = decodeInitialHandshake(reader);
  return { handshake, ratchetMessage: reader.rest() };
}

/** The identity and handshake of a prekey message, e.g. to find an existing session for it. */
export function peekPrekeyMessage(message: Uint8Array): InitialHandshake {
  return decodePrekeyMessage(message).handshake;
}

export class Session {
  readonly #role: typeof ROLE_INITIATOR | typeof ROLE_RESPONDER;
  readonly #baseKey: Bytes;
  readonly #state: RatchetState;
  /** The encoded initial handshake, kept by the initiator until the peer replies. */
  #pendingHandshake: Bytes | null;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    role: typeof ROLE_INITIATOR | typeof ROLE_RESPONDER,
    baseKey: Bytes,
    state: RatchetState,
    pendingHandshake: Bytes | null,
  ) {
    this.#role = role;
    this.#baseKey = baseKey;
    this.#state = state;
    this.#pendingHandshake = pendingHandshake;
  }

  /** @internal Used by initiateSession/acceptSession/deserializeSession. */
  static create(
    role: "initiator" | "responder",
    baseKey: Bytes,
    state: RatchetState,
    pendingHandshake: Bytes | null,
  ): Session {
    const code = role === "initiator" ? ROLE_INITIATOR : ROLE_RESPONDER;
    return new Session(code, baseKey, state, pendingHandshake);
  }

  /** Our identity key, encoded (33 bytes). */
  get localIdentityKey(): Bytes {
    const ad = this.#state.associatedData;
    return this.#role === ROLE_INITIATOR
      ? ad.slice(0, ENCODED_PUBLIC_KEY_BYTES)
      : ad.slice(ENCODED_PUBLIC_KEY_BYTES);
  }

  /** The peer's identity key, encoded (33 bytes): compare it with the trusted one. */
  get remoteIdentityKey(): Bytes {
    const ad = this.#state.associatedData;
    return this.#role === ROLE_INITIATOR
      ? ad.slice(ENCODED_PUBLIC_KEY_BYTES)
      : ad.slice(0, ENCODED_PUBLIC_KEY_BYTES);
  }

  /** The initiator's ephemeral key (encoded): identifies the handshake that made the session. */
  get baseKey(): Bytes {
    return this.#baseKey.slice();
  }

  /** True while our messages still carry the initial handshake (no reply received yet). */
  get hasPendingHandshake(): boolean {
    return this.#pendingHandshake !== null;
  }

  /** Decryptions run one at a time, in call order: each reads and advances the state. */
  #serialize<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(operation);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Encrypts one message to the peer. Encryption takes its message key synchronously, so calls
   * need no queue: concurrent calls get consecutive message numbers in call order, and a call
   * made while a decryption is pending uses the chain current at the time of the call.
   */
  async encrypt(plaintext: Uint8Array): Promise<Bytes> {
    const pendingHandshake = this.#pendingHandshake;
    const ratchetMessage = await ratchetEncrypt(this.#state, plaintext);
    if (pendingHandshake === null) return ratchetMessage;
    const writer = new ByteWriter(pendingHandshake.length + ratchetMessage.length + 1);
    return writer.u8(PREKEY_MESSAGE_TYPE).bytes(pendingHandshake).bytes(ratchetMessage).finish();
  }

  /**
   * Decrypts a message of this session. A prekey message is accepted only if it carries this
   * session's handshake (the initiator resends it until our first reply reaches them).
   * `now` (milliseconds) drives the expiry of skipped message keys.
   */
  decrypt(message: Uint8Array, now: number): Promise<Bytes> {
    return this.#serialize(async () => {
      let ratchetMessage: Uint8Array = message;
      if (messageType(message) === "prekey") {
        const prekeyMessage = decodePrekeyMessage(message);
        if (!constantTimeEqual(prekeyMessage.handshake.baseKey, this.#baseKey)) {
          throw new CryptoError("session-mismatch", "prekey message is for another session");
        }
        ratchetMessage = prekeyMessage.ratchetMessage;
      }
      const plaintext = await ratchetDecrypt(this.#state, ratchetMessage, now);
      // Any authenticated message from the peer proves they have the session.
      this.#pendingHandshake = null;
      return plaintext;
    });
  }

  /**
   * The full state, to persist between runs (see deserializeSession):
   *   version (u8 = 1) || role (u8: 1 initiator, 2 responder) || base key (33)
   *   || pending flag (u8) || [pending handshake (u32 length || bytes)] || ratchet state
   */
  serialize(): Bytes {
    const writer = new ByteWriter(1024);
    writer.u8(SESSION_VERSION).u8(this.#role).bytes(this.#baseKey);
    if (this.#pendingHandshake === null) writer.u8(0);
    else writer.u8(1).varBytes(this.#pendingHandshake);
    writeRatchetState(this.#state, writer);
    return writer.finish();
  }
}

/**
 * Starts a session as the initiator from the peer device's prekey bundle: verifies the bundle
 * and runs PQXDH (X3DH only if `requirePostQuantum: false` and the bundle has no KEM prekey).
 */
export async function initiateSession(
  ourIdentity: IdentityKeyPair,
  bundle: PrekeyBundle,
  options: HandshakeOptions = {},
): Promise<Session> {
  const [agreed, firstRatchetKey] = await Promise.all([
    initiateHandshake(ourIdentity, bundle, options),
    x25519GenerateKeyPair(),
  ]);
  const state = await initRatchetAsInitiator(
    agreed.sharedSecret,
    agreed.associatedData,
    agreed.theirSignedPrekey,
    firstRatchetKey,
  );
  const writer = new ByteWriter(2048);
  encodeInitialHandshake(agreed.initial, writer);
  return Session.create("initiator", agreed.initial.baseKey, state, writer.finish());
}

/**
 * Accepts a prekey message as the responder: looks up the named prekeys, runs the key agreement,
 * decrypts the embedded first message and only then consumes the one-time prekeys. Returns the
 * new session and the first plaintext. The caller should check `session.remoteIdentityKey`.
 */
export async function acceptSession(
  ourIdentity: IdentityKeyPair,
  message: Uint8Array,
  prekeys: PrekeyStore,
  now: number,
  options: HandshakeOptions = {},
): Promise<{ session: Session; plaintext: Bytes }> {
  const { handshake, ratchetMessage } = decodePrekeyMessage(message);
  const signedPrekey = await prekeys.signedPrekey(handshake.signedPrekeyId);
  if (signedPrekey === undefined) throw new CryptoError("unknown-prekey", "unknown signed prekey");
  let oneTimePrekey: X25519KeyPair | undefined;
  if (handshake.oneTimePrekeyId !== undefined) {
    oneTimePrekey = await prekeys.oneTimePrekey(handshake.oneTimePrekeyId);
    if (oneTimePrekey === undefined) {
      throw new CryptoError("prekey-reused", "one-time prekey is unknown or already used");
    }
  }
  let kemPrekey: MlKemKeyPair | undefined;
  if (handshake.kemPrekeyId !== undefined) {
    kemPrekey = await prekeys.kemPrekey(handshake.kemPrekeyId);
    if (kemPrekey === undefined) {
      throw new CryptoError("prekey-reused", "KEM prekey is unknown or already used");
    }
  }
  const agreed = await respondToHandshake(
    ourIdentity,
    handshake,
    { signedPrekey, oneTimePrekey, kemPrekey },
    options,
  );
  const state = initRatchetAsResponder(agreed.sharedSecret, agreed.associatedData, signedPrekey);
  const plaintext = await ratchetDecrypt(state, ratchetMessage, now);
  const consumed = await prekeys.consumeOneTimePrekeys({
    oneTimePrekeyId: handshake.oneTimePrekeyId,
    kemPrekeyId: handshake.kemPrekeyId,
  });
  if (!consumed) throw new CryptoError("prekey-reused", "one-time prekey was already used");
  return { session: Session.create("responder", handshake.baseKey, state, null), plaintext };
}

/** The session's full state, to persist between runs. */
export function serializeSession(session: Session): Bytes {
  return session.serialize();
}

/** Restores a session written by serializeSession. */
export function deserializeSession(bytes: Uint8Array): Session {
  const reader = new ByteReader(bytes, "session");
  const version = reader.u8();
  if (version !== SESSION_VERSION) {
    throw new CryptoError("unsupported-version", `session version ${version} is unknown`);
  }
  const role = reader.u8();
  if (role !== ROLE_INITIATOR && role !== ROLE_RESPONDER) {
    throw new CryptoError("malformed", "session has an unknown role");
  }
  const baseKey = reader.bytes(ENCODED_PUBLIC_KEY_BYTES);
  decodePublicKey(baseKey);
  const hasPending = reader.u8();
  if (hasPending > 1) throw new CryptoError("malformed", "session has a bad pending flag");
  const pendingHandshake = hasPending === 1 ? reader.varBytes(4096) : null;
  const state = readRatchetState(reader);
  reader.end();
  return Session.create(
    role === ROLE_INITIATOR ? "initiator" : "responder",
    baseKey,
    state,
    pendingHandshake,
  );
}
