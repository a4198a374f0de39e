/**
 * Sending one logical message: encrypt it for every device of the recipient (and a sync copy
 * for each of our other devices), send all envelopes in one request, and when the server says
 * the device set is off (FAILED_PRECONDITION with MismatchedDevices) fix the sessions - drop
 * removed devices, start sessions with new or reinstalled ones - and send again with the same
 * client message id, so a retry can never deliver twice.
 */

import type { MismatchedDevices } from "../proto/gen/guardyn/v1/common.ts";
import type { OutgoingEnvelope, SendMessageResponse } from "../proto/gen/guardyn/v1/messaging.ts";
import type { Api } from "./api.ts";
import { randomId } from "./bytes.ts";
import { type Content, encodeContent } from "./content.ts";
import { GuardynClientError } from "./errors.ts";
import type { Mutex } from "./lock.ts";
import type { ProfileState } from "./profile_state.ts";
import type { Sesame } from "./sesame.ts";

/** Rounds of "fix the device set and resend" before giving up. */
const MAX_DEVICE_ROUNDS = 4;

export interface OutgoingMessage {
  recipient: string;
  content: Content;
  /** What our other devices get (omit: no sync copies, e.g. for receipts and typing). */
  syncContent?: Content;
  /** Typing: delivered to open streams only, never stored; failures are not retried. */
  ephemeral?: boolean;
  /** Stored but not pushed. */
  silent?: boolean;
  /** Seconds the server keeps it deliverable (a call offer: the ring time); default retention. */
  ttlSeconds?: number;
  /** Push with high urgency (an incoming call). */
  urgent?: boolean;
  /** Idempotency key; also the id receipts refer to. */
  clientMessageId?: string;
  /** Runs under the state lock right after encryption, so its changes are saved with it. */
  onPrepared?: () => void;
}

/** A message encrypted and saved, ready to send (possibly later, possibly again). */
export interface PreparedMessage {
  readonly message: OutgoingMessage & { clientMessageId: string };
  /** Per device id. */
  readonly envelopes: Map<string, OutgoingEnvelope>;
  readonly syncEnvelopes: Map<string, OutgoingEnvelope>;
}

export interface OutboxDeps {
  api: Api;
  state: ProfileState;
  sesame: Sesame;
  lock: Mutex;
  persist: () => Promise<void>;
}

export class Outbox {
  constructor(private readonly deps: OutboxDeps) {}

  #me() {
    const account = this.deps.state.account;
    if (!account) throw new GuardynClientError("NOT_SIGNED_IN", "not signed in");
    return account;
  }

  /** Encrypts for every known device (fetching bundles for a first contact) and saves state. */
  prepare(message: OutgoingMessage): Promise<PreparedMessage> {
    return this.deps.lock.run(async () => {
      const me = this.#me();
      const { sesame } = this.deps;
      const full = { ...message, clientMessageId: message.clientMessageId ?? randomId() };
      const toSelf = message.recipient === me.accountId;
      const targets = message.ephemeral
        ? sesame.devicesOf(message.recipient)
        : await sesame.ensureSessions(message.recipient);
      this.#checkTrusted(message.recipient);
      const prepared: PreparedMessage = {
        message: full,
        envelopes: new Map(),
        syncEnvelopes: new Map(),
      };
      const plaintext = this.#plaintext(message.content);
      for (const envelope of await sesame.encryptFor(targets, plaintext)) {
        prepared.envelopes.set(envelope.deviceId, envelope);
      }
      if (message.syncContent && !toSelf) {
        const own = sesame.devicesOf(me.accountId);
        for (const envelope of await sesame.encryptFor(own, this.#plaintext(message.syncContent))) {
          prepared.syncEnvelopes.set(envelope.deviceId, envelope);
        }
      }
      message.onPrepared?.();
      // Ratchet state moved: it must be on disk before anything leaves, or a crash would
      // reuse message keys.
      await this.deps.persist();
      return prepared;
    });
  }

  /** Sends a prepared message, fixing the device set as the server asks. */
  async transmit(prepared: PreparedMessage): Promise<SendMessageResponse> {
    const { api } = this.deps;
    const messaging = api.transport.messaging;
    for (let round = 1;; round++) {
      if (prepared.envelopes.size === 0) {
        // Nobody to send to (e.g. typing before any session): nothing leaves.
        return { serverTimestampMs: 0, envelopes: [], duplicate: false };
      }
      try {
        return await api.authed(messaging.sendMessage.bind(messaging), {
          recipientAccountId: prepared.message.recipient,
          clientMessageId: prepared.message.clientMessageId,
          envelopes: [...prepared.envelopes.values()],
          syncEnvelopes: [...prepared.syncEnvelopes.values()],
          ephemeral: prepared.message.ephemeral ?? false,
          silent: prepared.message.silent ?? false,
          ttlSeconds: prepared.message.ttlSeconds ?? 0,
          urgent: prepared.message.urgent ?? false,
        }, { idempotent: true });
      } catch (error) {
        const mismatch = error instanceof GuardynClientError ? error.details.mismatch : undefined;
        if (!mismatch || prepared.message.ephemeral) throw error;
        if (round >= MAX_DEVICE_ROUNDS) {
          throw new GuardynClientError(
            "DEVICE_SET_UNSTABLE",
            "the recipient's devices kept changing while sending; try again",
            { cause: error },
          );
        }
        await this.#fixDevices(prepared, mismatch);
      }
    }
  }

  /** A verified contact whose key changed gets nothing until the user accepts the new key. */
  #checkTrusted(accountId: string): void {
    const contact = this.deps.state.contacts.get(accountId);
    if (contact?.blocked) {
      throw new GuardynClientError(
        "IDENTITY_CHANGED",
        `the safety number with ${
          contact.username ?? accountId
        } changed: verify it again or accept the new key before sending`,
      );
    }
  }

  #plaintext(content: Content): Uint8Array {
    return encodeContent({ senderRegistrationId: this.deps.state.registrationId, content });
  }

  #fixDevices(prepared: PreparedMessage, mismatch: MismatchedDevices): Promise<void> {
    return this.deps.lock.run(async () => {
      const me = this.#me();
      const { sesame, state } = this.deps;
      const recipient = prepared.message.recipient;
      const listFor = (accountId: string) =>
        accountId === recipient
          ? prepared.envelopes
          : accountId === me.accountId
          ? prepared.syncEnvelopes
          : undefined;
      const refetch: { accountId: string; deviceId: string }[] = [];
      for (const address of mismatch.extraDevices) {
        state.sessions.dropDevice(address.accountId, address.deviceId);
        listFor(address.accountId)?.delete(address.deviceId);
      }
      for (const address of [...mismatch.staleDevices, ...mismatch.missingDevices]) {
        if (!listFor(address.accountId)) continue;
        state.sessions.dropDevice(address.accountId, address.deviceId);
        listFor(address.accountId)!.delete(address.deviceId);
        refetch.push(address);
      }
      for (const address of refetch) {
        try {
          await sesame.establish(address.accountId, address.deviceId);
        } catch (error) {
          // Gone again already: the next round tells us.
          if (!(error instanceof GuardynClientError && error.code === "NOT_FOUND")) throw error;
        }
      }
      this.#checkTrusted(recipient);
      // Encrypt for every device that has a session but no envelope yet (new ones, and all of
      // them again if an identity change reset the account's sessions).
      const fill = async (
        accountId: string,
        list: Map<string, OutgoingEnvelope>,
        content: Content | undefined,
      ) => {
        if (!content) return;
        for (const [deviceId, envelope] of list) {
          const device = state.sessions.get(accountId, deviceId);
          if (!device || device.registrationId !== envelope.registrationId) list.delete(deviceId);
        }
        const missing = sesame.devicesOf(accountId).filter((device) => !list.has(device.deviceId));
        for (const envelope of await sesame.encryptFor(missing, this.#plaintext(content))) {
          list.set(envelope.deviceId, envelope);
        }
      };
      await fill(recipient, prepared.envelopes, prepared.message.content);
      if (recipient !== me.accountId) {
        await fill(me.accountId, prepared.syncEnvelopes, prepared.message.syncContent);
      }
      await this.deps.persist();
    });
  }
}
