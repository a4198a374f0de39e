/**
 * Pure checks of a SendMessage request against the contract's bounds, before any store access:
 * identifiers, the idempotency key, envelope counts, types and sizes. Every failure is an
 * INVALID_ARGUMENT whose message names the field and the limit.
 */

import { invalidArgument } from "../platform/errors.ts";
import {
  EnvelopeType,
  type OutgoingEnvelope,
  type SendMessageRequest,
} from "../../proto/gen/guardyn/v1/messaging.ts";

export interface SendLimits {
  /** Ciphertext bytes of one envelope. */
  envelopeMaxBytes: number;
  /** Envelopes for the recipient; sync copies get one less (the sender's own device). */
  maxEnvelopes: number;
  /** The mailbox retention: the longest (and the default) time an envelope stays deliverable. */
  mailboxTtlSeconds: number;
}

/** One envelope as checked: the fields the service uses, nothing else. */
export interface CheckedEnvelope {
  deviceId: string;
  registrationId: number;
  type: EnvelopeType;
  content: Uint8Array;
}

export interface CheckedSend {
  recipientAccountId: string;
  clientMessageId: string;
  envelopes: CheckedEnvelope[];
  syncEnvelopes: CheckedEnvelope[];
  ephemeral: boolean;
  silent: boolean;
  /** How long the envelopes stay deliverable, in seconds (the retention unless asked shorter). */
  ttlSeconds: number;
  /** Push with high urgency (incoming calls); never set together with silent. */
  urgent: boolean;
  /** The caller writes to its own account (note to self). */
  toSelf: boolean;
}

/** Server-assigned identifiers (accounts, devices): also valid bus subject tokens. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const CLIENT_MESSAGE_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** 1:1 envelopes carry Signal-protocol messages; MLS types go through GroupService. */
const ONE_TO_ONE_TYPES: ReadonlySet<EnvelopeType> = new Set([
  EnvelopeType.ENVELOPE_TYPE_PREKEY_MESSAGE,
  EnvelopeType.ENVELOPE_TYPE_RATCHET_MESSAGE,
]);
const UINT32_MAX = 0xffff_ffff;

export function checkSendRequest(
  request: SendMessageRequest,
  senderAccountId: string,
  limits: SendLimits,
): CheckedSend {
  if (!ID_PATTERN.test(request.recipientAccountId)) {
    throw invalidArgument("recipient_account_id must be 1..64 chars of [A-Za-z0-9_-]");
  }
  if (!CLIENT_MESSAGE_ID_PATTERN.test(request.clientMessageId)) {
    throw invalidArgument("client_message_id must be 1..64 chars of [A-Za-z0-9._-]");
  }
  const toSelf = request.recipientAccountId === senderAccountId;
  const envelopes = checkList(request.envelopes, "envelopes", 1, limits.maxEnvelopes, limits);
  const syncEnvelopes = checkList(
    request.syncEnvelopes,
    "sync_envelopes",
    0,
    limits.maxEnvelopes - 1,
    limits,
  );
  if (toSelf && syncEnvelopes.length > 0) {
    throw invalidArgument(
      "sync_envelopes must be empty when writing to your own account: envelopes cover your other devices",
    );
  }
  return {
    recipientAccountId: request.recipientAccountId,
    clientMessageId: request.clientMessageId,
    envelopes,
    syncEnvelopes,
    ephemeral: request.ephemeral === true,
    silent: request.silent === true,
    ttlSeconds: checkTtl(request.ttlSeconds ?? 0, limits.mailboxTtlSeconds),
    urgent: request.urgent === true && request.silent !== true,
    toSelf,
  };
}

function checkTtl(ttlSeconds: number, retentionSeconds: number): number {
  if (ttlSeconds === 0) return retentionSeconds;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > retentionSeconds) {
    throw invalidArgument(
      `ttl_seconds is ${ttlSeconds}; allowed: 0 (the retention) or 1..${retentionSeconds}`,
    );
  }
  return ttlSeconds;
}

function checkList(
  list: readonly OutgoingEnvelope[] | undefined,
  field: string,
  min: number,
  max: number,
  limits: SendLimits,
): CheckedEnvelope[] {
  const items = list ?? [];
  if (items.length < min || items.length > max) {
    throw invalidArgument(`${field} has ${items.length} entries; allowed: ${min}..${max}`);
  }
  const seen = new Set<string>();
  return items.map((envelope, i) => {
    const where = `${field}[${i}]`;
    if (!ID_PATTERN.test(envelope.deviceId)) {
      throw invalidArgument(`${where}.device_id must be 1..64 chars of [A-Za-z0-9_-]`);
    }
    if (seen.has(envelope.deviceId)) {
      throw invalidArgument(
        `${where}.device_id appears twice in ${field}; one envelope per device`,
      );
    }
    seen.add(envelope.deviceId);
    const registrationId = envelope.registrationId;
    if (!Number.isInteger(registrationId) || registrationId < 0 || registrationId > UINT32_MAX) {
      throw invalidArgument(`${where}.registration_id must be a uint32`);
    }
    if (!ONE_TO_ONE_TYPES.has(envelope.type)) {
      throw invalidArgument(`${where}.type must be PREKEY_MESSAGE or RATCHET_MESSAGE`);
    }
    const size = envelope.content?.byteLength ?? 0;
    if (size === 0) throw invalidArgument(`${where}.content is empty`);
    if (size > limits.envelopeMaxBytes) {
      throw invalidArgument(
        `${where}.content is ${size} bytes, above the ${limits.envelopeMaxBytes}-byte envelope limit`,
      );
    }
    return {
      deviceId: envelope.deviceId,
      registrationId,
      type: envelope.type,
      content: envelope.content,
    };
  });
}
