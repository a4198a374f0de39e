/**
 * A stored mailbox envelope as the API sends it. Shared by the services that write mailboxes
 * (messaging, groups) and the stream that reads them.
 */
import { mlsGroupIdOf } from "../../crypto/mls_inspect.ts";
import { type Envelope, EnvelopeType } from "../../proto/gen/guardyn/v1/messaging.ts";
import type { MailboxEnvelope } from "../store/ports.ts";
import { fromBase64Url, toBase64Url } from "../platform/base64url.ts";

const MLS_FRAMED: ReadonlySet<number> = new Set([
  EnvelopeType.ENVELOPE_TYPE_MLS_PUBLIC_MESSAGE,
  EnvelopeType.ENVELOPE_TYPE_MLS_PRIVATE_MESSAGE,
]);

export function toEnvelope(envelope: MailboxEnvelope): Envelope {
  return {
    id: envelope.id,
    seq: envelope.seq,
    sender: { accountId: envelope.sender.accountId, deviceId: envelope.sender.deviceId },
    clientMessageId: envelope.clientMessageId,
    type: envelope.type,
    content: envelope.content,
    serverTimestampMs: envelope.serverTimestampMs,
    ephemeral: false,
    groupId: groupIdOf(envelope) ?? new Uint8Array(),
  };
}

/**
 * The client message id of a commit's fan-out (commit and welcome envelopes): it names the
 * group and epoch, so a Welcome, whose group id is encrypted, still says which group's tree
 * (GetGroupState) its recipient needs to join.
 */
export function commitFanOutId(groupId: Uint8Array, epoch: number): string {
  return `mls.${toBase64Url(groupId)}.${epoch}`;
}

const FAN_OUT_ID = /^mls\.([A-Za-z0-9_-]{1,86})\.\d{1,16}$/;

function groupIdOf(envelope: MailboxEnvelope): Uint8Array | undefined {
  // MLS framed messages carry it in their clear header.
  if (MLS_FRAMED.has(envelope.type)) return mlsGroupIdOf(envelope.content);
  if (envelope.type !== EnvelopeType.ENVELOPE_TYPE_MLS_WELCOME) return undefined;
  const match = FAN_OUT_ID.exec(envelope.clientMessageId);
  return match ? fromBase64Url(match[1]!) : undefined;
}
