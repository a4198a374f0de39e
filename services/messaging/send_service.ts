/**
 * SendMessage: check the request (pure rules), check the envelope set against the current
 * devices, write every envelope into its device mailbox in one idempotent step, wake the
 * devices and answer with the server timestamp. Ephemeral envelopes skip the mailbox: they go
 * to whichever instance holds the device's stream, or nowhere.
 */

import type { Bus } from "../bus/port.ts";
import { failedPrecondition, GuardynError, notFound, unavailable } from "../platform/errors.ts";
import { type CallContext, requireAuth } from "../platform/grpc_server.ts";
import type { Logger } from "../platform/log.ts";
import type { RateLimiter } from "../platform/rate_limit.ts";
import type { DeviceRef, MailboxStore } from "../store/ports.ts";
import { deliveryRecordKey } from "../store/mailbox_rules.ts";
import { MismatchedDevices } from "../../proto/gen/guardyn/v1/common.ts";
import {
  Envelope,
  type SendMessageRequest,
  type SendMessageResponse,
} from "../../proto/gen/guardyn/v1/messaging.ts";
import { type AccountTargets, checkDeviceSets, type CurrentDevice } from "./device_set.ts";
import type { DeviceDirectory } from "./directory.ts";
import type { MailboxEvents } from "../kit/mailbox_events.ts";
import {
  type CheckedEnvelope,
  type CheckedSend,
  checkSendRequest,
  type SendLimits,
} from "./send_rules.ts";
import { backendFailure } from "./store_errors.ts";
import { toEnvelope } from "../kit/envelopes.ts";
import { randomBase64Url } from "../platform/base64url.ts";

export interface SendDeps {
  mailbox: MailboxStore;
  directory: DeviceDirectory;
  bus: Bus;
  events: MailboxEvents;
  log: Logger;
  limits: SendLimits;
  /** How long the idempotency record of a send is kept (a retry after it is a new message). */
  idempotencyWindowMs: number;
  /** Keys the idempotency records (TokenKeys.pseudonymKey): they never name the sender. */
  recordSecret: Uint8Array;
  /** Sends per sender device. */
  limiter: RateLimiter;
  now: () => number;
  /** Hands a just-written envelope to a stream of this instance; false when none took it. */
  offerLocal?: (recipient: DeviceRef, envelope: Envelope) => boolean;
  /** Sends at once on this instance; beyond, new sends are refused (retryable). */
  maxConcurrentSends?: number;
}

/**
 * Envelopes up to this size travel with their wake-up, so the device's instance can send them
 * without reading the mailbox; larger ones only wake it.
 */
export const WAKE_PAYLOAD_MAX_BYTES = 64 * 1024;

interface Target {
  recipient: DeviceRef;
  envelope: CheckedEnvelope;
}

export function sendMessageHandler(deps: SendDeps) {
  const maxConcurrent = deps.maxConcurrentSends ?? Number.POSITIVE_INFINITY;
  let running = 0;
  return async (request: SendMessageRequest, ctx: CallContext): Promise<SendMessageResponse> => {
    const auth = requireAuth(ctx);
    deps.limiter.take(`${auth.accountId}/${auth.deviceId}`, "messages sent by this device");
    const send = checkSendRequest(request, auth.accountId, deps.limits);
    const sender: DeviceRef = { accountId: auth.accountId, deviceId: auth.deviceId };
    // A slow store must not queue sends without bound: refuse early, clients back off.
    if (running >= maxConcurrent) {
      throw unavailable(
        `this instance is handling its maximum of ${maxConcurrent} sends; retry with backoff`,
      );
    }
    running++;
    try {
      const targets = await checkTargets(deps.directory, send, sender);
      return send.ephemeral
        ? sendEphemeral(deps, send, sender, targets)
        : await deliver(deps, send, sender, targets);
    } catch (error) {
      throw backendFailure(error);
    } finally {
      running--;
    }
  };
}

/**
 * The envelope set against the current devices; the mailboxes to write. A refusal is only
 * given after checking against the store itself, never on cached knowledge alone.
 */
async function checkTargets(
  directory: DeviceDirectory,
  send: CheckedSend,
  sender: DeviceRef,
): Promise<Target[]> {
  try {
    return await evaluateTargets(directory, send, sender, false);
  } catch (error) {
    if (!(error instanceof GuardynError)) throw error;
    return await evaluateTargets(directory, send, sender, true);
  }
}

async function evaluateTargets(
  directory: DeviceDirectory,
  send: CheckedSend,
  sender: DeviceRef,
  fresh: boolean,
): Promise<Target[]> {
  const needOwn = send.syncEnvelopes.length > 0;
  const [recipientDevices, ownDevices] = await Promise.all([
    directory.addressable(send.recipientAccountId, fresh),
    needOwn ? directory.addressable(sender.accountId, fresh) : Promise.resolve(undefined),
  ]);
  if (recipientDevices === undefined) throw notFound("the recipient account does not exist");
  if (recipientDevices.length === 0 && !send.toSelf) {
    throw failedPrecondition(
      "the recipient has no device with published keys yet",
      "IDENTITY_KEY_MISSING",
    );
  }
  const othersThanCaller = (devices: CurrentDevice[]) =>
    devices.filter((device) => device.deviceId !== sender.deviceId);
  const accounts: AccountTargets[] = [{
    accountId: send.recipientAccountId,
    current: send.toSelf ? othersThanCaller(recipientDevices) : recipientDevices,
    envelopes: send.envelopes,
  }];
  if (needOwn) {
    accounts.push({
      accountId: sender.accountId,
      current: othersThanCaller(ownDevices ?? []),
      envelopes: send.syncEnvelopes,
    });
  }
  const verdict = checkDeviceSets(accounts);
  if (!verdict.ok) {
    throw failedPrecondition(
      verdict.summary,
      verdict.reason,
      MismatchedDevices.encode(verdict.detail).finish(),
    );
  }
  return [
    ...send.envelopes.map((envelope) => ({
      recipient: { accountId: send.recipientAccountId, deviceId: envelope.deviceId },
      envelope,
    })),
    ...send.syncEnvelopes.map((envelope) => ({
      recipient: { accountId: sender.accountId, deviceId: envelope.deviceId },
      envelope,
    })),
  ];
}

async function deliver(
  deps: SendDeps,
  send: CheckedSend,
  sender: DeviceRef,
  targets: Target[],
): Promise<SendMessageResponse> {
  const now = deps.now();
  const result = await deps.mailbox.deliver({
    sender,
    clientMessageId: send.clientMessageId,
    recordKey: deliveryRecordKey(deps.recordSecret, sender, send.clientMessageId),
    serverTimestampMs: now,
    expiresAtMs: now + send.ttlSeconds * 1000,
    recordUntilMs: now + deps.idempotencyWindowMs,
    items: targets.map(({ recipient, envelope }) => ({
      recipient,
      type: envelope.type,
      content: envelope.content,
    })),
  });
  for (const stored of result.envelopes) {
    const { recipient } = stored;
    if (!result.duplicate && !send.silent) deps.events.written(recipient, 1, send.urgent);
    // A retry's first attempt may have died before waking anyone: wake, let the device read.
    const envelope = result.duplicate ? undefined : toEnvelope(stored);
    if (envelope && deps.offerLocal?.(recipient, envelope)) continue; // a stream here took it
    const wakeUp = envelope && envelope.content.byteLength <= WAKE_PAYLOAD_MAX_BYTES
      ? deps.bus.signal(recipient.accountId, recipient.deviceId, {
        kind: "payload",
        data: Envelope.encode(envelope).finish(),
      })
      : deps.bus.wake(recipient.accountId, recipient.deviceId);
    wakeUp.catch((error) => deps.log.warn("wake-up not sent", { error }));
  }
  return {
    serverTimestampMs: result.serverTimestampMs,
    envelopes: result.envelopes.map((envelope) => ({
      recipient: { ...envelope.recipient },
      envelopeId: envelope.id,
    })),
    duplicate: result.duplicate,
  };
}

/** Typing and similar: to open streams only, never stored, never pushed, never deduplicated. */
function sendEphemeral(
  deps: SendDeps,
  send: CheckedSend,
  sender: DeviceRef,
  targets: Target[],
): SendMessageResponse {
  const now = deps.now();
  const envelopes = targets.map(({ recipient, envelope }) => {
    const id = ephemeralId();
    const data = Envelope.encode({
      id,
      seq: 0,
      sender: { ...sender },
      clientMessageId: send.clientMessageId,
      type: envelope.type,
      content: envelope.content,
      serverTimestampMs: now,
      ephemeral: true,
      groupId: new Uint8Array(),
    }).finish();
    deps.bus.signal(recipient.accountId, recipient.deviceId, { kind: "payload", data }).catch(
      (error) => deps.log.warn("ephemeral envelope not sent", { error }),
    );
    return { recipient: { ...recipient }, envelopeId: id };
  });
  return { serverTimestampMs: now, envelopes, duplicate: false };
}

/** Ephemeral ids never parse as mailbox ids (those start with a seq), so acks of them are no-ops. */
function ephemeralId(): string {
  return `e.${randomBase64Url()}`;
}
