/**
 * The one place that defines every bus subject and event. Events carry identifiers only,
 * never content: the bus is as untrusted as the store.
 */

export const EVENT_STREAM = "GUARDYN_EVENTS";
export const EVENT_SUBJECT_PREFIX = "guardyn.events";
export const WAKE_SUBJECT_PREFIX = "guardyn.wake";
export const SIGNAL_SUBJECT_PREFIX = "guardyn.signal";

export type BusEvent =
  | {
    kind: "mailbox.written";
    accountId: string;
    deviceId: string;
    count: number;
    atMs: number;
    /** Present (true) when one of the envelopes asked for an urgent push (an incoming call). */
    urgent?: true;
  }
  | { kind: "mailbox.acked"; accountId: string; deviceId: string; count: number; atMs: number }
  | {
    kind: "account.deleted";
    accountId: string;
    atMs: number;
    /** The devices the account had, so services can purge what they hold per device. */
    deviceIds?: string[];
  }
  | { kind: "device.revoked"; accountId: string; deviceId: string; atMs: number }
  | { kind: "identity.changed"; accountId: string; atMs: number };

export type EventKind = BusEvent["kind"];

/**
 * Broadcast topics: small opaque bodies fanned out to every instance listening (presence
 * changes). Kept briefly (JetStream, memory storage) so an instance that reconnects catches up.
 */
export type BroadcastTopic = "presence";
export const BROADCAST_TOPICS: readonly BroadcastTopic[] = ["presence"];
/** Largest broadcast body. */
export const MAX_BROADCAST_BYTES = 16_384;

/** Broadcast subjects sit beside the event subjects, never under them (one stream each). */
export function broadcastSubject(topic: BroadcastTopic, eventPrefix: string): string {
  if (!BROADCAST_TOPICS.includes(topic)) throw new Error("unknown broadcast topic");
  return `${eventPrefix}_broadcast.${topic}`;
}

export function checkBroadcastBody(data: Uint8Array): void {
  if (!(data instanceof Uint8Array) || data.byteLength > MAX_BROADCAST_BYTES) {
    throw new Error(`a broadcast body has at most ${MAX_BROADCAST_BYTES} bytes`);
  }
}

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
  return deviceSubject(WAKE_SUBJECT_PREFIX, accountId, deviceId);
}

export function signalSubject(accountId: string, deviceId: string): string {
  return deviceSubject(SIGNAL_SUBJECT_PREFIX, accountId, deviceId);
}

function deviceSubject(prefix: string, accountId: string, deviceId: string): string {
  if (!TOKEN.test(accountId) || !TOKEN.test(deviceId)) {
    throw new Error("invalid account or device id for a bus subject");
  }
  return `${prefix}.${accountId}.${deviceId}`;
}

export function encodeEvent(event: BusEvent): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(event));
}

/** Encoded events are a few hundred bytes (a few KiB with device lists); larger is junk. */
export const MAX_EVENT_BYTES = 16_384;
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
    case "mailbox.written": {
      const event = {
        kind,
        accountId,
        deviceId: id(v, "deviceId"),
        count: counter(v, "count"),
        atMs,
      };
      return v.urgent === true ? { ...event, urgent: true } : event;
    }
    case "mailbox.acked":
      return { kind, accountId, deviceId: id(v, "deviceId"), count: counter(v, "count"), atMs };
    case "device.revoked":
      return { kind, accountId, deviceId: id(v, "deviceId"), atMs };
    case "account.deleted":
      return v.deviceIds === undefined
        ? { kind, accountId, atMs }
        : { kind, accountId, atMs, deviceIds: idList(v, "deviceIds") };
    case "identity.changed":
      return { kind, accountId, atMs };
  }
}

/** Devices per account.deleted event: far above any per-account device cap. */
export const MAX_EVENT_DEVICE_IDS = 100;

function idList(v: Record<string, unknown>, field: string): string[] {
  const value = v[field];
  const valid = Array.isArray(value) && value.length <= MAX_EVENT_DEVICE_IDS &&
    value.every((item) =>
      typeof item === "string" && item.length > 0 && item.length <= MAX_ID_LENGTH
    );
  if (!valid) {
    throw new Error(
      `bus event field ${field} must list at most ${MAX_EVENT_DEVICE_IDS} ids of 1..${MAX_ID_LENGTH} chars`,
    );
  }
  return [...value];
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

/**
 * Per-device signals between instances: fire-and-forget to every instance subscribed to the
 * device, never stored (at most once; nobody listening means dropped).
 */
export type DeviceSignal =
  /** A receive stream of the device opened; streams of it that opened earlier must close. */
  | { kind: "stream.opened"; streamId: string; openedAtMs: number }
  /** The device (or its previous install) was revoked at `atMs`: earlier streams must close. */
  | { kind: "device.revoked"; atMs: number }
  /** An opaque payload for the device's open stream (an ephemeral envelope, typing). */
  | { kind: "payload"; data: Uint8Array }
  /** Envelopes acknowledged on another instance (Acknowledge): free their room in the window. */
  | { kind: "acked"; envelopeIds: string[] };

/** Largest signal payload: one envelope with its metadata, well under NATS's 1 MiB default. */
export const MAX_SIGNAL_PAYLOAD_BYTES = 256 * 1024;
const STREAM_ID = /^[A-Za-z0-9_-]{1,64}$/;
const SIGNAL_KIND = { "stream.opened": 1, "device.revoked": 2, "payload": 3, "acked": 4 } as const;
/** Envelope ids in an "acked" signal: 1..500 ids of 1..64 printable ASCII characters. */
const ACKED_ID = /^[\x21-\x7e]{1,64}$/;
const ACKED_MAX_IDS = 500;

/** Binary, so payloads travel without base64: one kind byte, then the kind's fields. */
export function encodeSignal(signal: DeviceSignal): Uint8Array {
  switch (signal.kind) {
    case "stream.opened": {
      if (!STREAM_ID.test(signal.streamId)) {
        throw new Error("signal streamId must be 1..64 chars of A-Za-z0-9_-");
      }
      const id = new TextEncoder().encode(signal.streamId);
      const out = new Uint8Array(9 + id.byteLength);
      out[0] = SIGNAL_KIND["stream.opened"];
      new DataView(out.buffer).setFloat64(1, checkTime(signal.openedAtMs));
      out.set(id, 9);
      return out;
    }
    case "device.revoked": {
      const out = new Uint8Array(9);
      out[0] = SIGNAL_KIND["device.revoked"];
      new DataView(out.buffer).setFloat64(1, checkTime(signal.atMs));
      return out;
    }
    case "payload": {
      const data = signal.data;
      if (!(data instanceof Uint8Array) || data.byteLength === 0) {
        throw new Error("signal payload must be non-empty bytes");
      }
      if (data.byteLength > MAX_SIGNAL_PAYLOAD_BYTES) {
        throw new Error(
          `signal payload of ${data.byteLength} bytes is above the ${MAX_SIGNAL_PAYLOAD_BYTES}-byte limit`,
        );
      }
      const out = new Uint8Array(1 + data.byteLength);
      out[0] = SIGNAL_KIND.payload;
      out.set(data, 1);
      return out;
    }
    case "acked": {
      const ids = signal.envelopeIds;
      if (ids.length === 0 || ids.length > ACKED_MAX_IDS || !ids.every((id) => ACKED_ID.test(id))) {
        throw new Error(`an acked signal holds 1..${ACKED_MAX_IDS} envelope ids`);
      }
      const text = new TextEncoder().encode(ids.join("\n"));
      const out = new Uint8Array(1 + text.byteLength);
      out[0] = SIGNAL_KIND.acked;
      out.set(text, 1);
      return out;
    }
    default:
      throw new Error("unknown device signal");
  }
}

export function decodeSignal(bytes: Uint8Array): DeviceSignal {
  if (bytes.byteLength < 2 || bytes.byteLength > MAX_SIGNAL_PAYLOAD_BYTES + 1) {
    throw new Error("device signal has an invalid size");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (bytes[0]) {
    case SIGNAL_KIND["stream.opened"]: {
      if (bytes.byteLength < 10) throw new Error("stream.opened signal is truncated");
      const openedAtMs = checkTime(view.getFloat64(1));
      let streamId: string;
      try {
        streamId = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(9));
      } catch {
        throw new Error("stream.opened signal id is not UTF-8");
      }
      if (!STREAM_ID.test(streamId)) throw new Error("stream.opened signal id is malformed");
      return { kind: "stream.opened", streamId, openedAtMs };
    }
    case SIGNAL_KIND["device.revoked"]:
      if (bytes.byteLength !== 9) throw new Error("device.revoked signal has a wrong size");
      return { kind: "device.revoked", atMs: checkTime(view.getFloat64(1)) };
    case SIGNAL_KIND.payload:
      return { kind: "payload", data: bytes.slice(1) };
    case SIGNAL_KIND.acked: {
      const ids = new TextDecoder().decode(bytes.subarray(1)).split("\n");
      if (ids.length > ACKED_MAX_IDS || !ids.every((id) => ACKED_ID.test(id))) {
        throw new Error("acked signal is malformed");
      }
      return { kind: "acked", envelopeIds: ids };
    }
    default:
      throw new Error("unknown device signal");
  }
}

function checkTime(value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error("signal time must be a non-negative integer of milliseconds");
  }
  return value;
}
