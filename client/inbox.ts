/**
 * What an opened message means: updates the local history and contacts and says what to tell
 * the app and which receipts to send. Pure logic over the profile state; no I/O.
 */

import type { Envelope } from "../proto/gen/guardyn/v1/messaging.ts";
import type { ClientEvent } from "./client_events.ts";
import type { Plaintext } from "./content.ts";
import type { AccountInfo, ProfileState } from "./profile_state.ts";

export interface InboxOutcome {
  events: ClientEvent[];
  /** Delivery receipts owed: peer account -> message ids. */
  delivered: Map<string, string[]>;
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
