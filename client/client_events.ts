/** What a GuardynClient tells the app, as plain data. */

import type { CallEvent } from "./calls.ts";
import type { ConnectionState, EndReason } from "./receiver.ts";
import type { GuardynClientError } from "./errors.ts";
import type { StoredMessage } from "./history.ts";
import type { GroupMessage } from "./group_book.ts";
import type { ReplenishReport } from "./key_publisher.ts";
import type { SessionStarted } from "./sesame.ts";

export type ClientEvent =
  /** A new message in a conversation: incoming, or sent from another device of ours. */
  | { type: "message"; peer: string; message: StoredMessage }
  /** An outgoing message moved on (sent, delivered, read, failed). */
  | { type: "status"; peer: string; message: StoredMessage }
  /** Incoming messages were marked read (here or on another device of ours). */
  | { type: "read"; peer: string; ids: string[] }
  | { type: "typing"; peer: string; deviceId: string; typing: boolean }
  /**
   * The peer's identity key changed: a new install, a reset, or someone in the middle. Show
   * it; if the contact was verified, sending waits until the user accepts the new key.
   */
  | { type: "identity-changed"; peer: string; username?: string; wasVerified: boolean }
  | { type: "connection"; state: ConnectionState; error?: GuardynClientError }
  /** A device of our account introduced itself (it was just linked). */
  | { type: "own-device"; deviceId: string; deviceName: string }
  /** `peer` lets us see its presence (and its last-seen time with `lastSeen`). */
  | { type: "presence-granted"; peer: string; lastSeen: boolean }
  /** `peer` no longer lets us see its presence. */
  | { type: "presence-withdrawn"; peer: string }
  | { type: "session"; session: SessionStarted }
  /** An envelope that could not be opened (it is acknowledged and dropped). */
  | { type: "undecryptable"; sender: { accountId: string; deviceId: string }; reason: string }
  | { type: "keys-replenished"; report: ReplenishReport }
  /** The device stopped: revoked (state wiped), replaced by another stream, or logged out. */
  | { type: "signed-out"; reason: EndReason | "logged-out" }
  /** A group message arrived (or was sent from another device of ours). */
  | { type: "group-message"; groupId: string; message: GroupMessage }
  /** This device was added to a group (by the device named). */
  | { type: "group-joined"; groupId: string; by: { accountId: string; deviceId: string } }
  /** A group's membership changed (a commit was applied); removedSelf: we are out. */
  | {
    type: "group-members";
    groupId: string;
    epoch: number;
    added: { accountId: string; deviceId: string }[];
    removed: { accountId: string; deviceId: string }[];
    removedSelf: boolean;
  }
  | { type: "group-renamed"; groupId: string; name: string }
  | {
    type: "group-typing";
    groupId: string;
    from: { accountId: string; deviceId: string };
    typing: boolean;
  }
  /** Members of `by` read these messages of ours. */
  | { type: "group-read"; groupId: string; by: string; ids: string[] }
  /**
   * A member at our epoch holds another epoch authenticator: the group has forked (the server
   * or a member showed us different commits). Warn the user; counted per group.
   */
  | { type: "group-fork"; groupId: string; epoch: number }
  /**
   * Calls: "call-incoming" (ring; carries the caller's SDP offer), "call-answered" (our call
   * was answered; the callee's SDP answer), "call-ice" (the other end's ICE candidates: add
   * them once the remote description is set), "call-ended" (call.endReason says why).
   */
  | CallEvent
  /** A background task failed (it is retried where that makes sense). */
  | { type: "error"; during: string; error: GuardynClientError };
