/**
 * Sessions with every device of every peer, Sesame-style (Signal's "Sesame" algorithm, in its
 * simplest form): bundles are fetched for devices without a session, one PQXDH session is made
 * per device, envelopes are encrypted per device, and incoming messages are opened with the
 * session of their sending device (a prekey message creates one). Identity keys are checked
 * against the contacts' trusted keys at both points.
 */

import {
  acceptSession,
  CryptoError,
  encodePublicKey,
  initiateSession,
  messageType,
  peekPrekeyMessage,
  type PrekeyBundle as CryptoBundle,
  type Session,
} from "../crypto/mod.ts";
import { constantTimeEqual } from "../crypto/primitives.ts";
import type { PrekeyBundle } from "../proto/gen/guardyn/v1/auth.ts";
import {
  type Envelope,
  EnvelopeType,
  type OutgoingEnvelope,
} from "../proto/gen/guardyn/v1/messaging.ts";
import type { Api } from "./api.ts";
import { GuardynClientError } from "./errors.ts";
import type { ProfileState } from "./profile_state.ts";
import type { RemoteDevice } from "./session_book.ts";

export interface SessionStarted {
  accountId: string;
  deviceId: string;
  direction: "outgoing" | "incoming";
  /** The handshake consumed a one-time EC prekey. */
  oneTimePrekey: boolean;
  /** The handshake used the (reusable) last-resort ML-KEM key. */
  lastResortKem: boolean;
}

export interface SesameDeps {
  api: Api;
  state: ProfileState;
  now: () => number;
  onSessionStarted(event: SessionStarted): void;
  onIdentityChanged(accountId: string, wasVerified: boolean): void;
}

export interface Opened {
  plaintext: Uint8Array;
  /** The sender's identity key differs from the one trusted before this message. */
  identityChanged: boolean;
  /** For a new session: record it once the sender's registration id is known. */
  adopt?: (registrationId: number) => void;
}

const cryptoFailure = (message: string, cause?: unknown) =>
  new GuardynClientError("CRYPTO_FAILURE", message, { cause });

export class Sesame {
  constructor(private readonly deps: SesameDeps) {}

  #me() {
    const { account, identity } = this.deps.state;
    if (!account || !identity) throw new GuardynClientError("NOT_SIGNED_IN", "not signed in");
    return { ...account, identity, identityKey: encodePublicKey(identity.publicKey) };
  }

  /** Devices of `accountId` to address: the account's sessions (own device excluded). */
  devicesOf(accountId: string): RemoteDevice[] {
    const me = this.#me();
    return this.deps.state.sessions.devicesOf(accountId)
      .filter((device) => !(accountId === me.accountId && device.deviceId === me.deviceId));
  }

  /** Makes sure some session exists for an account we have never written to. */
  async ensureSessions(accountId: string): Promise<RemoteDevice[]> {
    if (this.devicesOf(accountId).length === 0) await this.establish(accountId);
    return this.devicesOf(accountId);
  }

  /**
   * Fetches bundles (every device of the account, or one) and starts a session with each.
   * Fetching the whole account also forgets devices that are gone.
   */
  async establish(accountId: string, deviceId?: string): Promise<void> {
    const { api, state, now } = this.deps;
    const me = this.#me();
    const keys = api.transport.keys;
    const response = await api.authed(keys.fetchPrekeyBundles.bind(keys), {
      accountId,
      deviceId: deviceId ?? "",
    }, { idempotent: true });
    if (accountId === me.accountId) {
      if (!constantTimeEqual(response.identityKey, me.identityKey)) {
        throw cryptoFailure("our account has another identity key now: this device was replaced");
      }
    } else {
      const verdict = state.contacts.observeIdentity(accountId, response.identityKey, now());
      if (verdict.kind === "changed") {
        // Sessions made with the old key are worthless now: start over with every device.
        state.sessions.dropAccount(accountId);
        this.deps.onIdentityChanged(accountId, verdict.wasVerified);
        if (deviceId !== undefined) return await this.establish(accountId);
      }
    }
    for (const bundle of response.bundles) {
      let session: Session;
      try {
        session = await initiateSession(me.identity, toCryptoBundle(response.identityKey, bundle));
      } catch (error) {
        if (error instanceof CryptoError) {
          throw cryptoFailure(
            `the bundle of device ${bundle.deviceId} fails a check (${error.code}): refusing it`,
            error,
          );
        }
        throw error;
      }
      state.sessions.add(accountId, bundle.deviceId, bundle.registrationId, session);
      this.deps.onSessionStarted({
        accountId,
        deviceId: bundle.deviceId,
        direction: "outgoing",
        oneTimePrekey: bundle.oneTimePrekey !== undefined,
        lastResortKem: bundle.kyberPrekeyLastResort,
      });
    }
    if (deviceId === undefined) {
      const current = new Set(response.bundles.map((bundle) => bundle.deviceId));
      for (const device of this.devicesOf(accountId)) {
        if (!current.has(device.deviceId)) state.sessions.dropDevice(accountId, device.deviceId);
      }
    }
  }

  /** Encrypts one plaintext for each device with its active session. */
  async encryptFor(
    devices: readonly RemoteDevice[],
    plaintext: Uint8Array,
  ): Promise<OutgoingEnvelope[]> {
    return await Promise.all(devices.map(async (device) => {
      const session = device.sessions[0];
      if (!session) throw new GuardynClientError("NOT_FOUND", `no session with ${device.deviceId}`);
      const content = await session.encrypt(plaintext);
      return {
        deviceId: device.deviceId,
        registrationId: device.registrationId,
        type: messageType(content) === "prekey"
          ? EnvelopeType.ENVELOPE_TYPE_PREKEY_MESSAGE
          : EnvelopeType.ENVELOPE_TYPE_RATCHET_MESSAGE,
        content,
      };
    }));
  }

  /** Opens an incoming envelope. Throws CRYPTO_FAILURE (with a CryptoError cause) when it cannot. */
  async open(envelope: Envelope): Promise<Opened> {
    const { state, now } = this.deps;
    const me = this.#me();
    const sender = envelope.sender;
    if (!sender?.accountId || !sender.deviceId) throw cryptoFailure("envelope without a sender");
    if (sender.accountId === me.accountId && sender.deviceId === me.deviceId) {
      throw cryptoFailure("envelope claims to come from this very device");
    }
    let kind: "prekey" | "ratchet";
    try {
      kind = messageType(envelope.content);
    } catch (error) {
      throw cryptoFailure("not a session message", error);
    }
    const device = state.sessions.get(sender.accountId, sender.deviceId);
    if (kind === "ratchet") {
      if (!device) throw cryptoFailure(`no session with ${sender.accountId}/${sender.deviceId}`);
      return { plaintext: await this.#tryEach(device, envelope.content), identityChanged: false };
    }
    let handshake;
    try {
      handshake = peekPrekeyMessage(envelope.content);
    } catch (error) {
      throw cryptoFailure("malformed prekey message", error);
    }
    // Only an authenticated handshake may change what we trust: the identity key in a prekey
    // message is the sender's claim until acceptSession has opened its first message.
    let identityChanged = false;
    if (sender.accountId === me.accountId) {
      if (!constantTimeEqual(handshake.identityKey, me.identityKey)) {
        throw cryptoFailure("a device of our account used another identity key");
      }
    } else {
      identityChanged =
        state.contacts.compareIdentity(sender.accountId, handshake.identityKey).kind === "changed";
    }
    // The initiator repeats its handshake until we answer: same base key, same session.
    const existing = identityChanged
      ? undefined
      : state.sessions.findByBaseKey(device, handshake.baseKey);
    if (existing && device) {
      return {
        plaintext: await this.#decryptWith(device, existing, envelope.content),
        identityChanged,
      };
    }
    if (state.sessions.baseKeySeen(handshake.baseKey)) {
      throw cryptoFailure("a replayed session handshake was refused");
    }
    const lastResortKem = handshake.kemPrekeyId !== undefined &&
      state.prekeys.isLastResortKem(handshake.kemPrekeyId);
    let accepted;
    try {
      accepted = await acceptSession(me.identity, envelope.content, state.prekeys, now());
    } catch (error) {
      throw cryptoFailure("the session handshake does not open", error);
    }
    if (sender.accountId !== me.accountId) {
      const verdict = state.contacts.observeIdentity(
        sender.accountId,
        handshake.identityKey,
        now(),
      );
      if (verdict.kind === "changed") {
        state.sessions.dropAccount(sender.accountId);
        this.deps.onIdentityChanged(sender.accountId, verdict.wasVerified);
      }
    }
    // Without any one-time key the handshake could be replayed; remember it to refuse that.
    if (
      handshake.oneTimePrekeyId === undefined &&
      (lastResortKem || handshake.kemPrekeyId === undefined)
    ) {
      state.sessions.rememberBaseKey(handshake.baseKey);
    }
    return {
      plaintext: accepted.plaintext,
      identityChanged,
      adopt: (registrationId) => {
        state.sessions.add(sender.accountId, sender.deviceId, registrationId, accepted.session);
        this.deps.onSessionStarted({
          accountId: sender.accountId,
          deviceId: sender.deviceId,
          direction: "incoming",
          oneTimePrekey: handshake.oneTimePrekeyId !== undefined,
          lastResortKem,
        });
      },
    };
  }

  async #tryEach(device: RemoteDevice, content: Uint8Array): Promise<Uint8Array> {
    let failure: unknown;
    for (const session of device.sessions) {
      try {
        return await this.#decryptWith(device, session, content);
      } catch (error) {
        failure = error;
        const code = (error as GuardynClientError).details?.cause instanceof CryptoError
          ? ((error as GuardynClientError).details.cause as CryptoError).code
          : undefined;
        // Another session of the device may own the message; anything else is final.
        if (code !== "decryption-failed") throw error;
      }
    }
    throw failure ?? cryptoFailure("no session");
  }

  async #decryptWith(
    device: RemoteDevice,
    session: Session,
    content: Uint8Array,
  ): Promise<Uint8Array> {
    try {
      const plaintext = await session.decrypt(content, this.deps.now());
      this.deps.state.sessions.promote(device, session);
      return plaintext;
    } catch (error) {
      if (error instanceof CryptoError) throw cryptoFailure(`cannot decrypt: ${error.code}`, error);
      throw error;
    }
  }
}

/** The API's bundle in the crypto library's shape. */
export function toCryptoBundle(identityKey: Uint8Array, bundle: PrekeyBundle): CryptoBundle {
  const signed = bundle.signedPrekey;
  const kem = bundle.kyberPrekey;
  if (!signed) throw cryptoFailure(`device ${bundle.deviceId} has no signed prekey`);
  return {
    identityKey,
    signedPrekey: {
      id: signed.keyId,
      publicKey: asBytes(signed.publicKey),
      signature: asBytes(signed.signature),
    },
    ...(bundle.oneTimePrekey
      ? {
        oneTimePrekey: {
          id: bundle.oneTimePrekey.keyId,
          publicKey: asBytes(bundle.oneTimePrekey.publicKey),
          signature: new Uint8Array(),
        },
      }
      : {}),
    ...(kem
      ? {
        kemPrekey: {
          id: kem.keyId,
          publicKey: asBytes(kem.publicKey),
          signature: asBytes(kem.signature),
        },
      }
      : {}),
  };
}

const asBytes = (bytes: Uint8Array): Uint8Array<ArrayBuffer> =>
  bytes.buffer instanceof ArrayBuffer ? bytes as Uint8Array<ArrayBuffer> : new Uint8Array(bytes);
