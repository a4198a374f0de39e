/**
 * Pure mailbox rules shared by every adapter: input limits, the envelope id format and the
 * idempotency digest. No I/O here, so the rules are identical on every backend.
 */
import { createHash } from "node:crypto";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { StoreInputError } from "./errors.ts";
import {
  type DeviceRef,
  MAILBOX_ACK_MAX,
  MAILBOX_CONTENT_MAX_BYTES,
  MAILBOX_DELIVERY_MAX_BYTES,
  MAILBOX_DELIVERY_MAX_ITEMS,
  MAILBOX_ID_MAX_CHARS,
  MAILBOX_PURGE_MAX,
  MAILBOX_READ_MAX,
  MAILBOX_TTL_MAX_MS,
  type MailboxDelivery,
  type MailboxEnvelope,
} from "./ports.ts";
import { toBase64Url } from "../platform/base64url.ts";

// deno-lint-ignore no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const INT32_MAX = 0x7fff_ffff;

function fail(message: string): never {
  throw new StoreInputError(message);
}

function checkId(value: unknown, what: string): void {
  if (typeof value !== "string" || value.length === 0) fail(`${what} must be a non-empty string`);
  if (value.length > MAILBOX_ID_MAX_CHARS) {
    fail(`${what} is ${value.length} characters, above the ${MAILBOX_ID_MAX_CHARS} limit`);
  }
  if (CONTROL_CHARS.test(value)) fail(`${what} contains control characters`);
}

function checkMs(value: unknown, what: string): void {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    fail(`${what} must be a non-negative integer of milliseconds, got ${String(value)}`);
  }
}

export function checkDevice(ref: DeviceRef, what: string): void {
  if (typeof ref !== "object" || ref === null) fail(`${what} must be a device reference`);
  checkId(ref.accountId, `${what}.accountId`);
  checkId(ref.deviceId, `${what}.deviceId`);
}

/** A stable key for a device, for maps and uniqueness checks (ids hold no control chars). */
export function deviceKey(ref: DeviceRef): string {
  return `${ref.accountId}\n${ref.deviceId}`;
}

/** Throws StoreInputError naming the first rule the delivery breaks. */
export function validateDelivery(delivery: MailboxDelivery): void {
  checkDevice(delivery.sender, "sender");
  checkId(delivery.clientMessageId, "clientMessageId");
  checkMs(delivery.serverTimestampMs, "serverTimestampMs");
  checkMs(delivery.expiresAtMs, "expiresAtMs");
  if (
    !(delivery.recordKey instanceof Uint8Array) ||
    delivery.recordKey.byteLength !== DELIVERY_RECORD_KEY_BYTES
  ) {
    fail(`recordKey must be ${DELIVERY_RECORD_KEY_BYTES} bytes (deliveryRecordKey)`);
  }
  if (delivery.recordUntilMs !== undefined) {
    checkMs(delivery.recordUntilMs, "recordUntilMs");
    if (delivery.recordUntilMs <= delivery.serverTimestampMs) {
      fail("recordUntilMs must be after serverTimestampMs");
    }
  }
  const lifetime = delivery.expiresAtMs - delivery.serverTimestampMs;
  if (lifetime <= 0) fail("expiresAtMs must be after serverTimestampMs");
  if (lifetime > MAILBOX_TTL_MAX_MS) {
    fail(`mailbox lifetime ${lifetime} ms is above the ${MAILBOX_TTL_MAX_MS} ms limit`);
  }
  const items = delivery.items;
  if (!Array.isArray(items) || items.length === 0) fail("a delivery needs at least one item");
  if (items.length > MAILBOX_DELIVERY_MAX_ITEMS) {
    fail(`a delivery has ${items.length} items, above the ${MAILBOX_DELIVERY_MAX_ITEMS} limit`);
  }
  const seen = new Set<string>();
  let total = 0;
  items.forEach((item, i) => {
    checkDevice(item.recipient, `items[${i}].recipient`);
    const key = deviceKey(item.recipient);
    if (seen.has(key)) fail(`items[${i}].recipient appears twice; one envelope per device`);
    seen.add(key);
    if (!Number.isInteger(item.type) || item.type < 0 || item.type > INT32_MAX) {
      fail(`items[${i}].type must be an integer in 0..${INT32_MAX}`);
    }
    if (!(item.content instanceof Uint8Array) || item.content.byteLength === 0) {
      fail(`items[${i}].content must be non-empty bytes`);
    }
    if (item.content.byteLength > MAILBOX_CONTENT_MAX_BYTES) {
      fail(
        `items[${i}].content is ${item.content.byteLength} bytes, above the ` +
          `${MAILBOX_CONTENT_MAX_BYTES}-byte limit`,
      );
    }
    total += item.content.byteLength;
  });
  if (total > MAILBOX_DELIVERY_MAX_BYTES) {
    fail(`a delivery carries ${total} bytes, above the ${MAILBOX_DELIVERY_MAX_BYTES}-byte limit`);
  }
}

export function validateRead(owner: DeviceRef, afterSeq: number, limit: number, nowMs: number) {
  checkDevice(owner, "owner");
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) {
    fail(`afterSeq must be a non-negative integer, got ${String(afterSeq)}`);
  }
  if (!Number.isInteger(limit) || limit < 1 || limit > MAILBOX_READ_MAX) {
    fail(`read limit must be an integer in 1..${MAILBOX_READ_MAX}, got ${String(limit)}`);
  }
  checkMs(nowMs, "nowMs");
}

export function validateAck(owner: DeviceRef, ids: string[]): void {
  checkDevice(owner, "owner");
  if (!Array.isArray(ids)) fail("ids must be an array of envelope ids");
  if (ids.length > MAILBOX_ACK_MAX) {
    fail(`ack of ${ids.length} ids is above the ${MAILBOX_ACK_MAX} limit`);
  }
  ids.forEach((id, i) => {
    if (typeof id !== "string" || id.length > ENVELOPE_ID_MAX_CHARS) {
      fail(`ids[${i}] is not an envelope id (a string of at most ${ENVELOPE_ID_MAX_CHARS} chars)`);
    }
  });
}

export function validateCount(owner: DeviceRef, nowMs: number): void {
  checkDevice(owner, "owner");
  checkMs(nowMs, "nowMs");
}

export function validatePurge(nowMs: number, limit: number): void {
  checkMs(nowMs, "nowMs");
  if (!Number.isInteger(limit) || limit < 1 || limit > MAILBOX_PURGE_MAX) {
    fail(`purge limit must be an integer in 1..${MAILBOX_PURGE_MAX}, got ${String(limit)}`);
  }
}

// Envelope ids carry their seq, so an ack finds the row by (owner, seq) without an id index;
// the 128 random bits make the id globally unique and unguessable.
const ENVELOPE_ID = /^([1-9][0-9]{0,15})\.([A-Za-z0-9_-]{22})$/;
export const ENVELOPE_ID_MAX_CHARS = 64;

export function newEnvelopeId(seq: number): string {
  const random = crypto.getRandomValues(new Uint8Array(16));
  return `${seq}.${toBase64Url(random)}`;
}

/** The seq an envelope id names, or undefined when the string is not an envelope id. */
export function envelopeIdSeq(id: string): number | undefined {
  const match = ENVELOPE_ID.exec(id);
  if (!match) return undefined;
  const seq = Number(match[1]);
  return Number.isSafeInteger(seq) ? seq : undefined;
}

/**
 * SHA-256 over the recipients, types and contents, in order. A retry must carry the same
 * items; timestamps are left out because the service stamps every attempt anew.
 */
export function deliveryDigest(delivery: MailboxDelivery): Uint8Array {
  // One length-prefixed buffer hashed in one call: much cheaper than many small updates.
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [];
  let size = 4;
  for (const item of delivery.items) {
    const account = encoder.encode(item.recipient.accountId);
    const device = encoder.encode(item.recipient.deviceId);
    parts.push(account, device, item.content);
    size += 16 + account.byteLength + device.byteLength + item.content.byteLength;
  }
  const buffer = new Uint8Array(size);
  const view = new DataView(buffer.buffer);
  view.setUint32(0, delivery.items.length);
  let at = 4;
  const field = (bytes: Uint8Array) => {
    view.setUint32(at, bytes.byteLength);
    buffer.set(bytes, at + 4);
    at += 4 + bytes.byteLength;
  };
  delivery.items.forEach((item, i) => {
    field(parts[3 * i]!);
    field(parts[3 * i + 1]!);
    view.setUint32(at, item.type);
    at += 4;
    field(parts[3 * i + 2]!);
  });
  return new Uint8Array(createHash("sha256").update(buffer).digest());
}

/** Bytes of a delivery record key: an HMAC-SHA-256. */
export const DELIVERY_RECORD_KEY_BYTES = 32;

/**
 * The idempotency record's key: HMAC-SHA-256 under a server secret of the sender device and
 * client message id, length-prefixed. The record then names nobody: without the secret, a
 * copy of the database cannot tell whose send a record was, or test a guess.
 */
export function deliveryRecordKey(
  secret: Uint8Array,
  sender: DeviceRef,
  clientMessageId: string,
): Uint8Array {
  let keyed = KEYED_STATES.get(secret);
  if (!keyed) {
    // The key's inner and outer pads are hashed once per secret; each call clones that state.
    keyed = hmac.create(sha256, secret);
    KEYED_STATES.set(secret, keyed);
  }
  const encoder = new TextEncoder();
  const parts = [sender.accountId, sender.deviceId, clientMessageId].map((p) => encoder.encode(p));
  const message = new Uint8Array(parts.reduce((n, part) => n + 4 + part.byteLength, 0));
  const view = new DataView(message.buffer);
  let at = 0;
  for (const part of parts) {
    view.setUint32(at, part.byteLength);
    message.set(part, at + 4);
    at += 4 + part.byteLength;
  }
  return keyed.clone().update(message).digest();
}

const KEYED_STATES = new WeakMap<Uint8Array, ReturnType<typeof hmac.create>>();

/** Whole seconds of row TTL for a delivery (CQL TTLs are in seconds; round up, never 0). */
export function ttlSeconds(delivery: { serverTimestampMs: number; expiresAtMs: number }): number {
  return Math.max(1, Math.ceil((delivery.expiresAtMs - delivery.serverTimestampMs) / 1000));
}

/** When a delivery's idempotency record ends: its window, never after its envelopes. */
export function recordUntilMs(
  delivery: { expiresAtMs: number; recordUntilMs?: number },
): number {
  return Math.min(delivery.recordUntilMs ?? delivery.expiresAtMs, delivery.expiresAtMs);
}

/** Whole seconds of TTL for a delivery's idempotency record (CQL), never 0. */
export function recordTtlSeconds(
  delivery: { serverTimestampMs: number; expiresAtMs: number; recordUntilMs?: number },
): number {
  return ttlSeconds({
    serverTimestampMs: delivery.serverTimestampMs,
    expiresAtMs: recordUntilMs(delivery),
  });
}

/**
 * The envelopes of a delivery whose items were stored under `ids` (in item order; each id
 * carries its seq), stamped with `times` (the first attempt's, for a retry).
 */
export function envelopesOfDelivery(
  delivery: MailboxDelivery,
  ids: readonly string[],
  times: { serverTimestampMs: number; expiresAtMs: number } = delivery,
): MailboxEnvelope[] {
  return delivery.items.map((item, i) => {
    const id = ids[i]!;
    return {
      id,
      recipient: { ...item.recipient },
      seq: envelopeIdSeq(id)!,
      sender: { ...delivery.sender },
      clientMessageId: delivery.clientMessageId,
      type: item.type,
      content: item.content,
      serverTimestampMs: times.serverTimestampMs,
      expiresAtMs: times.expiresAtMs,
    };
  });
}

/** An envelope read back from a mailbox row (both adapters name the columns alike). */
export function envelopeFromRow(
  owner: DeviceRef,
  row: Record<string, unknown>,
  content: Uint8Array,
): MailboxEnvelope {
  return {
    id: String(row.id),
    recipient: { accountId: owner.accountId, deviceId: owner.deviceId },
    seq: Number(row.seq),
    sender: { accountId: String(row.sender_account), deviceId: String(row.sender_device) },
    clientMessageId: String(row.client_message_id),
    type: Number(row.type),
    content,
    serverTimestampMs: Number(row.server_ts),
    expiresAtMs: Number(row.expires_at),
  };
}
