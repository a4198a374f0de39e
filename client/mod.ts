/**
 * Guardyn client SDK: embed it to give an app end-to-end encrypted messaging over the Guardyn
 * services. Start with `GuardynClient.open(...)`; see docs/CLIENT.md.
 */

export {
  type ConversationSummary,
  type DeviceInfo,
  GuardynClient,
  type GuardynClientOptions,
  type LinkingSession,
} from "./client.ts";
export { DEFAULT_RING_MS, type IceServer, type TurnServers } from "./call_control.ts";
export type { CallEndReason, CallEvent, CallInfo, CallState } from "./calls.ts";
export type {
  PushPlatformName,
  PushRegistrationInfo,
  PushRegistrationRequest,
  PushSettings,
} from "./push.ts";
export type { PresenceInfo, PresenceStatusName, PresenceWatch } from "./presence.ts";
export type { ClientEvent } from "./client_events.ts";
export type { CallMedia, IceCandidate } from "./content.ts";
export type { Contact } from "./contacts.ts";
export { type ClientErrorCode, GuardynClientError } from "./errors.ts";
export type { MessageStatus, StoredMessage } from "./history.ts";
export type { GroupMessage } from "./group_book.ts";
export type { GroupSummary } from "./groups.ts";
export { DEFAULT_KDF_COST, type KdfCost } from "./kdf.ts";
export { DEFAULT_KEY_POLICY, type KeyPolicy, type ReplenishReport } from "./key_publisher.ts";
export type { PreparedMessage } from "./outbox.ts";
export type { AccountInfo } from "./profile_state.ts";
export type { ConnectionState } from "./receiver.ts";
export type { SessionStarted } from "./sesame.ts";
