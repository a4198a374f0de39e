/**
 * The one place that defines every bus subject and event. Events carry identifiers only,
 * never content: the bus is as untrusted as the store.
 */

export const EVENT_STREAM = "GUARDYN_EVENTS";
export const EVENT_SUBJECT_PREFIX = "guardyn.events";
export const WAKE_SUBJECT_PREFIX = "guardyn.wake";

export type BusEvent =
  | { kind: "mailbox.written"; accountId: string; deviceId: string; count: number; atMs: number }
  | { kind: "mailbox.acked"; accountId: string; deviceId: string; count: number; atMs: number }
  | { kind: "account.deleted"; accountId: string; atMs: number }
  | { kind: "device.revoked"; accountId: string; deviceId: string; atMs: number }
  | { kind: "identity.changed"; accountId: string; atMs: number };

export type EventKind = BusEvent["kind"];

export const EVENT_KINDS: readonly EventKind[] = [
  "mailbox.written",
  "mailbox.acked",
  "account.deleted",
  "device.revoked",
  "identity.changed",
];

/** `guardyn.events.mailbox.written` etc. The prefix is overridable so tests can isolate runs. */
export function eventSubject(kind: EventKind, prefix: string = EVENT_SUBJECT_PREFIX): string {
  return `${prefix}.${kind}`;
}

/** Subject tokens must not contain separators or wildcards; ids are validated before use. */
const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;

export function wakeSubject(accountId: string, deviceId: string): string {
  if (!TOKEN.test(accountId) || !TOKEN.test(deviceId)) {
    throw new Error("invalid account or device id for a bus subject");
  }
  return `${WAKE_SUBJECT_PREFIX}.${accountId}.${deviceId}`;
}

export function encodeEvent(event: BusEvent): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(event));
}

/** Encoded events are a few hundred bytes; anything larger is junk. */
export const MAX_EVENT_BYTES = 4096;
const MAX_ID_LENGTH = 128;

export function decodeEvent(bytes: Uint8Array): BusEvent {
  if (bytes.byteLength > MAX_EVENT_BYTES) throw new Error("bus event too large");
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new Error("bus event is not valid JSON");
  }
  return validateEvent(value);
}

/**
 * Checks the shape of an event and returns a copy holding only the known fields in a fixed
 * order, so equal events always encode to equal bytes (the basis of idempotent publish).
 */
export function validateEvent(value: unknown): BusEvent {
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    throw new Error("bus event must be an object");
  }
  const v = value as Record<string, unknown>;
  const kind = v.kind as EventKind;
  if (!EVENT_KINDS.includes(kind)) throw new Error("unknown bus event");
  const accountId = id(v, "accountId");
  const atMs = counter(v, "atMs");
  switch (kind) {
    case "mailbox.written":
    case "mailbox.acked":
      return { kind, accountId, deviceId: id(v, "deviceId"), count: counter(v, "count"), atMs };
    case "device.revoked":
      return { kind, accountId, deviceId: id(v, "deviceId"), atMs };
    case "account.deleted":
    case "identity.changed":
      return { kind, accountId, atMs };
  }
}

function id(v: Record<string, unknown>, field: string): string {
  const value = v[field];
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_ID_LENGTH) {
    throw new Error(`bus event field ${field} must be a string of 1..${MAX_ID_LENGTH} chars`);
  }
  return value;
}

function counter(v: Record<string, unknown>, field: string): number {
  const value = v[field];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new Error(`bus event field ${field} must be a non-negative integer`);
  }
  return value;
}
