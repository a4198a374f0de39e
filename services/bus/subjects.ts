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

/** `guardyn.events.mailbox.written` etc. */
export function eventSubject(kind: EventKind): string {
  return `${EVENT_SUBJECT_PREFIX}.${kind}`;
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

export function decodeEvent(bytes: Uint8Array): BusEvent {
  const value = JSON.parse(new TextDecoder().decode(bytes)) as BusEvent;
  if (!value || typeof value !== "object" || !EVENT_KINDS.includes(value.kind)) {
    throw new Error("unknown bus event");
  }
  return value;
}
