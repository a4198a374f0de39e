/**
 * Incoming envelopes, from ciphertext to meaning: de-duplication, opening with the sender's
 * session, and what an opened message changes in the local history and contacts. No I/O: the
 * caller saves the state, then acknowledges, emits the events and sends the receipts.
 */

import type { Envelope } from "../proto/gen/guardyn/v1/messaging.ts";
import { fromBase64 } from "./bytes.ts";
import type { ClientEvent } from "./client_events.ts";
import { type CallSignal, decodeContent, type Plaintext } from "./content.ts";
import type { GuardynClientError } from "./errors.ts";
import type { AccountInfo, ProfileState } from "./profile_state.ts";
import type { Sesame } from "./sesame.ts";

export interface InboxOutcome {
  events: ClientEvent[];
  /** Delivery receipts owed: peer account -> message ids. */
  delivered: Map<string, string[]>;
  /** Call signals, in order, for the call book (client/calls.ts). */
  calls: IncomingCallSignal[];
}

export interface IncomingCallSignal {
  from: { accountId: string; deviceId: string };
  serverTimestampMs: number;
  call: string;
  signal: CallSignal;
}

export interface BatchResult {
  /** Envelope ids to acknowledge once the state is saved (ephemeral ones need none). */
  ack: string[];
  outcome: InboxOutcome;
  /** Sessions created from prekey messages (one-time prekeys were used). */
  newSessions: number;
}

/** Opens a batch in order and applies it to the state. Undecryptable envelopes become events. */
export async function openBatch(
  state: ProfileState,
  sesame: Sesame,
  me: AccountInfo,
  envelopes: readonly Envelope[],
): Promise<BatchResult> {
  const result: BatchResult = {
    ack: [],
    outcome: { events: [], delivered: new Map(), calls: [] },
    newSessions: 0,
  };
  for (const envelope of envelopes) {
    const sender = envelope.sender;
    if (!envelope.ephemeral) result.ack.push(envelope.id);
    const messageKey = `${sender?.accountId}/${sender?.deviceId}/${envelope.clientMessageId}`;
    if (state.seenEnvelopes.has(envelope.id)) continue;
    if (!envelope.ephemeral && state.seenMessages.has(messageKey)) {
      state.seenEnvelopes.add(envelope.id);
      continue;
    }
    try {
      const opened = await sesame.open(envelope);
      const plaintext = decodeContent(opened.plaintext);
      if (opened.adopt) {
        opened.adopt(plaintext.senderRegistrationId);
        result.newSessions++;
      }
      applyIncoming(state, me, envelope, plaintext, opened.identityChanged, result.outcome);
    } catch (error) {
      const cause = (error as GuardynClientError).details?.cause as { code?: string } | undefined;
      // A message decrypted before (a redelivery the ids did not catch) is no news.
      if (cause?.code !== "duplicate-message") {
        result.outcome.events.push({
          type: "undecryptable",
          sender: { accountId: sender?.accountId ?? "", deviceId: sender?.deviceId ?? "" },
          reason: (error as Error).message,
        });
      }
    }
    if (!envelope.ephemeral) {
      state.seenEnvelopes.add(envelope.id);
      state.seenMessages.add(messageKey);
    }
  }
  return result;
}

export function applyIncoming(
  state: ProfileState,
  me: AccountInfo,
  envelope: Envelope,
  plaintext: Plaintext,
  identityWarning: boolean,
  outcome: InboxOutcome,
): void {
  const sender = envelope.sender!;
  const fromOwnDevice = sender.accountId === me.accountId;
  const content = plaintext.content;
  const serverTimestampMs = envelope.serverTimestampMs;
  switch (content.kind) {
    case "text": {
      const peer = sender.accountId;
      const message = {
        id: content.id,
        direction: fromOwnDevice ? "out" as const : "in" as const,
        body: content.body,
        sentAtMs: content.sentAtMs,
        serverTimestampMs,
        senderDeviceId: sender.deviceId,
        status: fromOwnDevice ? "sent" as const : "unread" as const,
        identityWarning,
        ...(content.file ? { file: content.file } : {}),
      };
      if (state.history.add(peer, message)) {
        outcome.events.push({ type: "message", peer, message });
        if (!fromOwnDevice) {
          const ids = outcome.delivered.get(peer) ?? [];
          ids.push(content.id);
          outcome.delivered.set(peer, ids);
        }
      }
      return;
    }
    case "receipt": {
      if (fromOwnDevice) return;
      for (const id of content.ids) {
        const message = state.history.advance(sender.accountId, id, content.receipt);
        if (message) outcome.events.push({ type: "status", peer: sender.accountId, message });
      }
      return;
    }
    case "typing":
      if (fromOwnDevice) return;
      outcome.events.push({
        type: "typing",
        peer: sender.accountId,
        deviceId: sender.deviceId,
        typing: content.typing,
      });
      return;
    case "sent": {
      // Only our own devices may claim to have sent something in our name.
      if (!fromOwnDevice) return;
      const message = {
        id: content.id,
        direction: "out" as const,
        body: content.body,
        sentAtMs: content.sentAtMs,
        serverTimestampMs,
        senderDeviceId: sender.deviceId,
        status: "sent" as const,
        identityWarning: false,
        ...(content.file ? { file: content.file } : {}),
      };
      state.contacts.upsert(content.to);
      if (state.history.add(content.to, message)) {
        outcome.events.push({ type: "message", peer: content.to, message });
      }
      return;
    }
    case "read": {
      if (!fromOwnDevice) return;
      const ids = state.history.markRead(content.peer, content.ids);
      if (ids.length > 0) outcome.events.push({ type: "read", peer: content.peer, ids });
      return;
    }
    case "call":
      outcome.calls.push({
        from: { accountId: sender.accountId, deviceId: sender.deviceId },
        serverTimestampMs,
        call: content.call,
        signal: content.signal,
      });
      return;
    case "presence": {
      if (fromOwnDevice) return;
      const peer = sender.accountId;
      state.presence.receive(
        peer,
        content.capability
          ? { capability: fromBase64(content.capability), lastSeen: content.lastSeen }
          : undefined,
      );
      outcome.events.push(
        content.capability
          ? { type: "presence-granted", peer, lastSeen: content.lastSeen }
          : { type: "presence-withdrawn", peer },
      );
      return;
    }
    case "presence-given":
      if (!fromOwnDevice) return;
      state.presence.give(content.to, {
        grantHash: fromBase64(content.grantHash),
        lastSeen: content.lastSeen,
      });
      return;
    case "hello":
      if (!fromOwnDevice) return;
      outcome.events.push({
        type: "own-device",
        deviceId: sender.deviceId,
        deviceName: content.deviceName,
      });
      return;
  }
}
