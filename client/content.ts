/**
 * What travels inside the Double Ratchet: the only plaintext format of the SDK. The server
 * never sees it. JSON, then padded (ISO/IEC 7816-4: 0x80 then zeros) to a multiple of 160 bytes
 * so ciphertext sizes do not give away message lengths.
 *
 *   { "v": 1, "rid": <sender registration id>, "c": <content> }
 *
 * The registration id lets a receiver answer a new device without fetching its bundle. Control
 * messages (receipts, typing, sync copies, device announcements) are end-to-end encrypted like
 * text, so the server cannot tell them apart beyond the ephemeral/silent flags.
 */

import { utf8Decode, utf8Encode } from "./bytes.ts";
import { GuardynClientError } from "./errors.ts";

export const CONTENT_VERSION = 1;
export const PAD_BLOCK = 160;
/** Longest text body, in UTF-8 bytes. */
export const MAX_TEXT_BYTES = 16 * 1024;
/** Message ids per receipt. */
export const MAX_RECEIPT_IDS = 100;
const ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const MAX_CONTENT_BYTES = 64 * 1024;

/**
 * An encrypted file on the media service: what the receiver needs to fetch and open it. The
 * digest is the attachment digest the server checked when the upload completed.
 */
export interface FileRef {
  mediaId: string;
  /** AES-256 key of the attachment (base64). */
  key: string;
  /** Attachment digest (base64). */
  digest: string;
  /** Ciphertext bytes. */
  size: number;
  /** The file's name as the sender had it (no path). */
  name: string;
  /** Plaintext bytes. */
  plainSize: number;
}

/** One ICE candidate, as RTCIceCandidateInit carries it. */
export interface IceCandidate {
  candidate: string;
  sdpMid?: string;
  sdpMLineIndex?: number;
}

export type CallMedia = "audio" | "video";

/**
 * Call signaling (client/calls.ts). `device` names the one device of the peer a signal is for
 * once a call has two ends; the peer's other devices ignore it.
 */
export type CallSignal =
  /** Ring the callee's devices for `ringMs` (counted from the server's receive time). */
  | { op: "offer"; media: CallMedia; sdp: string; ringMs: number }
  | { op: "answer"; sdp: string; device: string }
  | { op: "ice"; candidates: IceCandidate[]; device?: string }
  | { op: "reject"; reason: "declined" | "busy"; device: string }
  /** The caller gave up before an answer (or its ring ran out). */
  | { op: "cancel" }
  | { op: "hangup"; device?: string }
  /** Sync copy for our own other devices: stop ringing, this device took the call. */
  | { op: "handled"; how: "answered" | "declined" | "busy" };

/** SDP bytes in one offer or answer. */
export const MAX_SDP_BYTES = 32 * 1024;
/** ICE candidates in one signal. */
export const MAX_ICE_CANDIDATES = 20;
export const MIN_RING_MS = 5_000;
export const MAX_RING_MS = 120_000;

export type Content =
  /**
   * A text message. `id` is the sender's client message id, referenced by receipts. With
   * `file`, the text is the file's caption.
   */
  | { kind: "text"; id: string; body: string; sentAtMs: number; file?: FileRef }
  /** The recipient's devices got (or the user read) these messages. */
  | { kind: "receipt"; receipt: "delivered" | "read"; ids: string[] }
  /** The sender started or stopped typing (sent as an ephemeral envelope). */
  | { kind: "typing"; typing: boolean }
  /** Sync copy for our own other devices: we sent this text to `to`. */
  | { kind: "sent"; to: string; id: string; body: string; sentAtMs: number; file?: FileRef }
  /** Sync copy for our own other devices: we read these messages of `peer`. */
  | { kind: "read"; peer: string; ids: string[] }
  /** A newly linked device of our account introduces itself. */
  | { kind: "hello"; deviceName: string }
  /** Call signaling for call `call` (a random id chosen by the caller). */
  | { kind: "call"; call: string; signal: CallSignal }
  /**
   * A presence grant (presence.proto): the capability lets the receiver read our presence;
   * empty withdraws it. `lastSeen`: the grant also shows when we were last online.
   */
  | { kind: "presence"; capability: string; lastSeen: boolean }
  /** Sync copy for our own other devices: we granted `to` (the hash, to revoke it later). */
  | { kind: "presence-given"; to: string; grantHash: string; lastSeen: boolean };

export interface Plaintext {
  senderRegistrationId: number;
  content: Content;
}

const invalid = (why: string) =>
  new GuardynClientError("CRYPTO_FAILURE", `bad message content: ${why}`);

export function encodeContent(plaintext: Plaintext): Uint8Array<ArrayBuffer> {
  checkContent(plaintext.content, (why) => new GuardynClientError("BAD_INPUT", why));
  const json = utf8Encode(JSON.stringify({
    v: CONTENT_VERSION,
    rid: plaintext.senderRegistrationId,
    c: plaintext.content,
  }));
  const padded = new Uint8Array(Math.ceil((json.length + 1) / PAD_BLOCK) * PAD_BLOCK);
  padded.set(json);
  padded[json.length] = 0x80;
  return padded;
}

export function decodeContent(bytes: Uint8Array): Plaintext {
  if (bytes.length > MAX_CONTENT_BYTES + PAD_BLOCK) throw invalid("too large");
  let end = bytes.length - 1;
  while (end >= 0 && bytes[end] === 0) end--;
  if (end < 0 || bytes[end] !== 0x80) throw invalid("bad padding");
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8Decode(bytes.subarray(0, end)));
  } catch {
    throw invalid("not JSON");
  }
  const outer = parsed as { v?: unknown; rid?: unknown; c?: unknown } | null;
  if (typeof outer !== "object" || outer === null || outer.v !== CONTENT_VERSION) {
    throw invalid("unknown version");
  }
  const rid = outer.rid;
  if (typeof rid !== "number" || !Number.isInteger(rid) || rid < 1 || rid > 0x7fff_ffff) {
    throw invalid("bad registration id");
  }
  const content = outer.c as Content;
  checkContent(content, invalid);
  return { senderRegistrationId: rid, content: pick(content) };
}

/** Only the fields of the kind, so unknown extra fields never reach the app. */
function pick(c: Content): Content {
  switch (c.kind) {
    case "text":
      return {
        kind: c.kind,
        id: c.id,
        body: c.body,
        sentAtMs: c.sentAtMs,
        ...(c.file ? { file: pickFile(c.file) } : {}),
      };
    case "receipt":
      return { kind: c.kind, receipt: c.receipt, ids: [...c.ids] };
    case "typing":
      return { kind: c.kind, typing: c.typing };
    case "sent":
      return {
        kind: c.kind,
        to: c.to,
        id: c.id,
        body: c.body,
        sentAtMs: c.sentAtMs,
        ...(c.file ? { file: pickFile(c.file) } : {}),
      };
    case "read":
      return { kind: c.kind, peer: c.peer, ids: [...c.ids] };
    case "hello":
      return { kind: c.kind, deviceName: c.deviceName };
    case "call":
      return { kind: c.kind, call: c.call, signal: pickSignal(c.signal) };
    case "presence":
      return { kind: c.kind, capability: c.capability, lastSeen: c.lastSeen };
    case "presence-given":
      return { kind: c.kind, to: c.to, grantHash: c.grantHash, lastSeen: c.lastSeen };
  }
}

function pickSignal(s: CallSignal): CallSignal {
  switch (s.op) {
    case "offer":
      return { op: s.op, media: s.media, sdp: s.sdp, ringMs: s.ringMs };
    case "answer":
      return { op: s.op, sdp: s.sdp, device: s.device };
    case "ice":
      return {
        op: s.op,
        candidates: s.candidates.map((c) => ({
          candidate: c.candidate,
          ...(c.sdpMid !== undefined ? { sdpMid: c.sdpMid } : {}),
          ...(c.sdpMLineIndex !== undefined ? { sdpMLineIndex: c.sdpMLineIndex } : {}),
        })),
        ...(s.device !== undefined ? { device: s.device } : {}),
      };
    case "reject":
      return { op: s.op, reason: s.reason, device: s.device };
    case "cancel":
      return { op: s.op };
    case "hangup":
      return { op: s.op, ...(s.device !== undefined ? { device: s.device } : {}) };
    case "handled":
      return { op: s.op, how: s.how };
  }
}

function checkContent(c: Content, fail: (why: string) => Error): void {
  if (typeof c !== "object" || c === null) throw fail("content must be an object");
  const id = (value: unknown, field: string) => {
    if (typeof value !== "string" || !ID_PATTERN.test(value)) {
      throw fail(`${field} must be 1..64 chars of [A-Za-z0-9._-]`);
    }
  };
  const body = (value: unknown) => {
    if (typeof value !== "string" || value.length === 0) throw fail("text must not be empty");
    if (utf8Encode(value).length > MAX_TEXT_BYTES) {
      throw fail(`text must be at most ${MAX_TEXT_BYTES} bytes`);
    }
  };
  const time = (value: unknown) => {
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
      throw fail("sentAtMs must be a non-negative integer");
    }
  };
  const ids = (value: unknown) => {
    if (!Array.isArray(value) || value.length < 1 || value.length > MAX_RECEIPT_IDS) {
      throw fail(`a receipt names 1..${MAX_RECEIPT_IDS} messages`);
    }
    value.forEach((item, i) => id(item, `ids[${i}]`));
  };
  const file = (value: FileRef | undefined) => {
    if (value !== undefined) checkFileRef(value, fail);
  };
  switch (c.kind) {
    case "text":
      id(c.id, "id");
      body(c.body);
      time(c.sentAtMs);
      file(c.file);
      return;
    case "sent":
      id(c.to, "to");
      id(c.id, "id");
      body(c.body);
      time(c.sentAtMs);
      file(c.file);
      return;
    case "receipt":
      if (c.receipt !== "delivered" && c.receipt !== "read") throw fail("unknown receipt type");
      ids(c.ids);
      return;
    case "read":
      id(c.peer, "peer");
      ids(c.ids);
      return;
    case "typing":
      if (typeof c.typing !== "boolean") throw fail("typing must be a boolean");
      return;
    case "hello":
      if (
        typeof c.deviceName !== "string" || c.deviceName.length < 1 || c.deviceName.length > 64
      ) {
        throw fail("deviceName must have 1..64 characters");
      }
      return;
    case "call":
      id(c.call, "call");
      checkSignal(c.signal, fail);
      return;
    case "presence":
      // 32 bytes in base64 (44 characters), or empty to withdraw.
      if (typeof c.capability !== "string" || !/^([A-Za-z0-9+/]{43}=)?$/.test(c.capability)) {
        throw fail("capability must be 32 bytes in base64, or empty");
      }
      if (typeof c.lastSeen !== "boolean") throw fail("lastSeen must be a boolean");
      return;
    case "presence-given":
      id(c.to, "to");
      if (typeof c.grantHash !== "string" || !/^[A-Za-z0-9+/]{43}=$/.test(c.grantHash)) {
        throw fail("grantHash must be 32 bytes in base64");
      }
      if (typeof c.lastSeen !== "boolean") throw fail("lastSeen must be a boolean");
      return;
    default:
      throw fail("unknown content kind");
  }
}

function checkSignal(s: CallSignal, fail: (why: string) => Error): void {
  if (typeof s !== "object" || s === null) throw fail("signal must be an object");
  const device = (value: unknown, optional: boolean) => {
    if (optional && value === undefined) return;
    if (typeof value !== "string" || !ID_PATTERN.test(value)) {
      throw fail("signal.device must be a device id");
    }
  };
  const sdp = (value: unknown) => {
    if (typeof value !== "string" || value.length === 0) throw fail("sdp must not be empty");
    if (utf8Encode(value).length > MAX_SDP_BYTES) {
      throw fail(`sdp must be at most ${MAX_SDP_BYTES} bytes`);
    }
  };
  switch (s.op) {
    case "offer":
      if (s.media !== "audio" && s.media !== "video") throw fail("media must be audio or video");
      sdp(s.sdp);
      if (!Number.isInteger(s.ringMs) || s.ringMs < MIN_RING_MS || s.ringMs > MAX_RING_MS) {
        throw fail(`ringMs must be ${MIN_RING_MS}..${MAX_RING_MS}`);
      }
      return;
    case "answer":
      sdp(s.sdp);
      device(s.device, false);
      return;
    case "ice":
      if (
        !Array.isArray(s.candidates) || s.candidates.length < 1 ||
        s.candidates.length > MAX_ICE_CANDIDATES
      ) {
        throw fail(`an ice signal carries 1..${MAX_ICE_CANDIDATES} candidates`);
      }
      for (const c of s.candidates) {
        if (typeof c !== "object" || c === null) throw fail("a candidate must be an object");
        if (typeof c.candidate !== "string" || c.candidate.length > 1024) {
          throw fail("candidate must be a string of at most 1024 characters");
        }
        if (c.sdpMid !== undefined && (typeof c.sdpMid !== "string" || c.sdpMid.length > 64)) {
          throw fail("sdpMid must be a string of at most 64 characters");
        }
        if (
          c.sdpMLineIndex !== undefined &&
          (!Number.isInteger(c.sdpMLineIndex) || c.sdpMLineIndex < 0 || c.sdpMLineIndex > 1024)
        ) {
          throw fail("sdpMLineIndex must be an integer in 0..1024");
        }
      }
      device(s.device, true);
      return;
    case "reject":
      if (s.reason !== "declined" && s.reason !== "busy") throw fail("unknown reject reason");
      device(s.device, false);
      return;
    case "cancel":
      return;
    case "hangup":
      device(s.device, true);
      return;
    case "handled":
      if (s.how !== "answered" && s.how !== "declined" && s.how !== "busy") {
        throw fail("unknown handled value");
      }
      return;
    default:
      throw fail("unknown call signal");
  }
}

/** Checks a file reference from a message (1:1 or group); throws `fail(why)`. */
export function checkFileRef(value: FileRef, fail: (why: string) => Error): void {
  if (typeof value !== "object" || value === null) throw fail("file must be an object");
  if (typeof value.mediaId !== "string" || !/^[A-Za-z0-9_-]{16,64}$/.test(value.mediaId)) {
    throw fail("file.mediaId is not a media id");
  }
  for (const [field, bytes] of [["key", 32], ["digest", 32]] as const) {
    const raw = value[field];
    if (typeof raw !== "string" || raw.length !== 44) {
      throw fail(`file.${field} must be ${bytes} bytes`);
    }
  }
  for (const field of ["size", "plainSize"] as const) {
    if (!Number.isSafeInteger(value[field]) || value[field] < 0) {
      throw fail(`file.${field} must be a non-negative integer`);
    }
  }
  if (
    typeof value.name !== "string" || value.name.length < 1 || value.name.length > 255 ||
    /[\/\p{Cc}]/u.test(value.name)
  ) {
    throw fail("file.name must be 1..255 characters, no path or control characters");
  }
}

export function pickFile(f: FileRef): FileRef {
  return {
    mediaId: f.mediaId,
    key: f.key,
    digest: f.digest,
    size: f.size,
    name: f.name,
    plainSize: f.plainSize,
  };
}
