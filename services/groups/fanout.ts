/**
 * Writes group envelopes into member mailboxes and wakes the devices, as SendMessage does for
 * 1:1 envelopes. A fan-out is split into mailbox deliveries within the store's bounds (1,000
 * envelopes, 8 MiB each); every delivery is idempotent by a record key derived from the
 * fan-out's key and its index, so a fan-out can simply be run again after a crash, a retry or
 * by another instance, and no device gets an envelope twice.
 */
import { sha256 } from "../../crypto/primitives.ts";
import type { Bus } from "../bus/port.ts";
import { toEnvelope } from "../kit/envelopes.ts";
import type { MailboxEvents } from "../kit/mailbox_events.ts";
import type { Logger } from "../platform/log.ts";
import {
  type DeviceRef,
  MAILBOX_DELIVERY_MAX_BYTES,
  MAILBOX_DELIVERY_MAX_ITEMS,
  type MailboxDeliveryResult,
  type MailboxStore,
} from "../store/ports.ts";
import { Envelope, type EnvelopeType } from "../../proto/gen/guardyn/v1/messaging.ts";

/** Envelopes up to this size travel with their wake-up (as in SendMessage). */
const WAKE_PAYLOAD_MAX_BYTES = 64 * 1024;

export interface FanOutItem {
  recipient: DeviceRef;
  type: EnvelopeType;
  content: Uint8Array;
}

export interface FanOut {
  sender: DeviceRef;
  clientMessageId: string;
  /** The fan-out's idempotency key (32 bytes); each delivery derives its own from it. */
  recordKey: Uint8Array;
  items: FanOutItem[];
  /** No push event (receipts and the like). */
  silent: boolean;
}

export interface FanOutDeps {
  mailbox: MailboxStore;
  bus: Bus;
  events: MailboxEvents;
  log: Logger;
  now: () => number;
  mailboxTtlMs: number;
  idempotencyWindowMs: number;
}

export interface FanOutResult {
  serverTimestampMs: number;
  written: number;
  /** Every delivery was a retry of an earlier one. */
  duplicate: boolean;
}

/** Writes every item (all or, on an error, a retryable part), then wakes the recipients. */
export async function fanOut(deps: FanOutDeps, fanOut: FanOut): Promise<FanOutResult> {
  const now = deps.now();
  const results: MailboxDeliveryResult[] = [];
  for (const [index, items] of chunks(fanOut.items).entries()) {
    results.push(
      await deps.mailbox.deliver({
        sender: fanOut.sender,
        clientMessageId: fanOut.clientMessageId,
        recordKey: chunkKey(fanOut.recordKey, index),
        serverTimestampMs: now,
        expiresAtMs: now + deps.mailboxTtlMs,
        recordUntilMs: now + deps.idempotencyWindowMs,
        items,
      }),
    );
  }
  let written = 0;
  for (const result of results) {
    if (result.duplicate) continue;
    for (const stored of result.envelopes) {
      written++;
      if (!fanOut.silent) deps.events.written(stored.recipient, 1);
      const envelope = toEnvelope(stored);
      const { accountId, deviceId } = stored.recipient;
      const wakeUp = envelope.content.byteLength <= WAKE_PAYLOAD_MAX_BYTES
        ? deps.bus.signal(accountId, deviceId, {
          kind: "payload",
          data: Envelope.encode(envelope).finish(),
        })
        : deps.bus.wake(accountId, deviceId);
      wakeUp.catch((error) => deps.log.warn("wake-up not sent", { error }));
    }
  }
  const first = results.find((r) => r.serverTimestampMs > 0)?.serverTimestampMs ?? now;
  return {
    serverTimestampMs: first,
    written,
    duplicate: results.length > 0 && results.every((r) => r.duplicate),
  };
}

/** Items split within the store's per-delivery bounds, in order. */
export function chunks(items: readonly FanOutItem[]): FanOutItem[][] {
  const out: FanOutItem[][] = [];
  let current: FanOutItem[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = item.content.byteLength;
    if (
      current.length > 0 &&
      (current.length >= MAILBOX_DELIVERY_MAX_ITEMS || bytes + size > MAILBOX_DELIVERY_MAX_BYTES)
    ) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/** The record key of delivery `index` of a fan-out: SHA-256(key ‖ index). */
export function chunkKey(recordKey: Uint8Array, index: number): Uint8Array {
  if (index === 0) return recordKey;
  const input = new Uint8Array(recordKey.byteLength + 4);
  input.set(recordKey);
  new DataView(input.buffer).setUint32(recordKey.byteLength, index);
  return sha256(input);
}
