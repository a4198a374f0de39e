/**
 * The wire formats of gRPC-Web and Connect, pure (no I/O): both carry the call's status inside
 * the response body, so they run on an HTTP server that cannot send trailers (`Deno.serve`).
 *
 * - gRPC-Web (binary): the gRPC length-prefixed frames, then one trailer frame (flag 0x80)
 *   holding `grpc-status`, `grpc-message` and the trailing metadata as HTTP/1 header lines.
 * - Connect unary: the bare message as the body; an error is a JSON body and an HTTP status.
 * - Connect streaming: enveloped messages, then an end-of-stream envelope (flag 0x02) holding
 *   `{"error": {...}, "metadata": {...}}` as JSON.
 *
 * Only the protobuf codec is served: the JSON codecs would need a second, slower code path.
 */

/** The five-byte prefix of a gRPC / Connect frame. */
export const FRAME_HEADER_BYTES = 5;
export const FLAG_COMPRESSED = 0x01;
/** Connect's end-of-stream envelope. */
export const FLAG_CONNECT_END = 0x02;
/** gRPC-Web's trailer frame. */
export const FLAG_GRPC_WEB_TRAILER = 0x80;

export type WireProtocol = "grpc-web" | "connect-unary" | "connect-stream";

/** What the request's content type says, or why it is refused. */
export function protocolOf(
  contentType: string | null,
  streaming: boolean,
): { protocol: WireProtocol } | { refused: string } {
  const type = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "application/grpc-web" || type === "application/grpc-web+proto") {
    return { protocol: "grpc-web" };
  }
  if (type === "application/connect+proto") {
    return streaming
      ? { protocol: "connect-stream" }
      : { refused: "this method is unary: send Connect unary (application/proto)" };
  }
  if (type === "application/proto") {
    return streaming
      ? { refused: "this method streams: send application/connect+proto" }
      : { protocol: "connect-unary" };
  }
  return {
    refused: "content-type must be application/grpc-web+proto, application/proto or " +
      "application/connect+proto (the JSON and base64-text codecs are not served)",
  };
}

export function frame(flags: number, payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

export interface Frame {
  flags: number;
  payload: Uint8Array;
}

export class FrameError extends Error {
  constructor(message: string, readonly tooLarge = false) {
    super(message);
    this.name = "FrameError";
  }
}

/**
 * Splits a byte stream into frames as chunks arrive. A frame longer than `maxPayloadBytes` is
 * refused from its header, before its body is buffered.
 */
export class FrameReader {
  /** Bytes received and not yet returned as frames, in order, from `#head` on. */
  #chunks: Uint8Array[] = [];
  #head = 0;
  #length = 0;

  constructor(private readonly maxPayloadBytes: number) {}

  /**
   * Adds a chunk; returns the frames it completed. A frame is copied once, when complete
   * (and not at all when it sits in one chunk), so frames split over many small HTTP/2 DATA
   * frames cost linear time.
   */
  push(chunk: Uint8Array): Frame[] {
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#length += chunk.length;
    }
    const frames: Frame[] = [];
    while (this.#length >= FRAME_HEADER_BYTES) {
      const header = this.#read(FRAME_HEADER_BYTES, false);
      const view = new DataView(header.buffer, header.byteOffset, FRAME_HEADER_BYTES);
      const flags = view.getUint8(0);
      const length = view.getUint32(1);
      if (length > this.maxPayloadBytes) {
        throw new FrameError(
          `a message of ${length} bytes exceeds the limit of ${this.maxPayloadBytes} bytes`,
          true,
        );
      }
      if (this.#length - FRAME_HEADER_BYTES < length) break;
      const whole = this.#read(FRAME_HEADER_BYTES + length, true);
      frames.push({ flags, payload: whole.subarray(FRAME_HEADER_BYTES) });
    }
    if (this.#head > 64 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
    return frames;
  }

  /** Bytes of an incomplete frame still waiting; non-zero at the end of a body is truncation. */
  get pendingBytes(): number {
    return this.#length;
  }

  /** The first `n` buffered bytes (n <= #length), removed when `consume`. */
  #read(n: number, consume: boolean): Uint8Array {
    const first = this.#chunks[this.#head]!;
    if (first.length >= n) {
      if (consume) this.#drop(n);
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let filled = 0;
    for (let index = this.#head; filled < n; index++) {
      const part = this.#chunks[index]!;
      const used = Math.min(part.length, n - filled);
      out.set(part.subarray(0, used), filled);
      filled += used;
    }
    if (consume) this.#drop(n);
    return out;
  }

  #drop(n: number): void {
    this.#length -= n;
    while (n > 0) {
      const part = this.#chunks[this.#head]!;
      if (part.length <= n) {
        n -= part.length;
        this.#chunks[this.#head++] = EMPTY;
      } else {
        this.#chunks[this.#head] = part.subarray(n);
        n = 0;
      }
    }
  }
}

const EMPTY = new Uint8Array(0);

/** A status as the web protocols carry it: a gRPC code, a message, trailing metadata. */
export interface WireStatus {
  code: number;
  message: string;
  /** Lower-case keys; `-bin` values are raw bytes. */
  metadata: Array<[string, string | Uint8Array]>;
}

const encoder = new TextEncoder();

/** The gRPC-Web trailer frame for a status. */
export function grpcWebTrailer(status: WireStatus): Uint8Array<ArrayBuffer> {
  const lines = [`grpc-status:${status.code}`];
  if (status.message) lines.push(`grpc-message:${percentEncode(status.message)}`);
  for (const [key, value] of status.metadata) lines.push(`${key}:${metadataText(key, value)}`);
  return frame(FLAG_GRPC_WEB_TRAILER, encoder.encode(lines.join("\r\n") + "\r\n"));
}

/** Parses a gRPC-Web trailer frame's payload (the client side). */
export function parseGrpcWebTrailer(payload: Uint8Array): WireStatus {
  const metadata: Array<[string, string | Uint8Array]> = [];
  let code = 2;
  let message = "";
  for (const line of new TextDecoder().decode(payload).split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (key === "grpc-status") code = Number.parseInt(value, 10);
    else if (key === "grpc-message") message = percentDecode(value);
    else metadata.push([key, key.endsWith("-bin") ? fromBase64(value) : value]);
  }
  return { code: Number.isInteger(code) ? code : 2, message, metadata };
}

/** gRPC status codes by Connect's names (the index is the gRPC code). */
const CONNECT_CODES = [
  "ok",
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
] as const;

/** The HTTP status of a Connect unary error, from the Connect protocol's table. */
const CONNECT_HTTP_STATUS: Record<number, number> = {
  1: 499,
  2: 500,
  3: 400,
  4: 504,
  5: 404,
  6: 409,
  7: 403,
  8: 429,
  9: 400,
  10: 409,
  11: 400,
  12: 501,
  13: 500,
  14: 503,
  15: 500,
  16: 401,
};

export function connectCodeName(code: number): string {
  return CONNECT_CODES[code] ?? "unknown";
}

export function connectCodeOf(name: unknown): number {
  const index = CONNECT_CODES.indexOf(name as (typeof CONNECT_CODES)[number]);
  return index < 0 ? 2 : index;
}

export function connectHttpStatus(code: number): number {
  return CONNECT_HTTP_STATUS[code] ?? 500;
}

/** The JSON error body of a Connect call. */
export function connectErrorJson(status: WireStatus): { code: string; message: string } {
  return { code: connectCodeName(status.code), message: status.message };
}

/** Connect's end-of-stream envelope: the error (if any) and the trailing metadata. */
export function connectEndStream(status: WireStatus): Uint8Array<ArrayBuffer> {
  const metadata: Record<string, string[]> = {};
  for (const [key, value] of status.metadata) {
    (metadata[key] ??= []).push(metadataText(key, value));
  }
  const body = status.code === 0 ? { metadata } : { error: connectErrorJson(status), metadata };
  return frame(FLAG_CONNECT_END, encoder.encode(JSON.stringify(body)));
}

/**
 * The deadline a request asks for, in milliseconds, or undefined: `grpc-timeout` (gRPC-Web:
 * up to 8 digits and a unit) or `connect-timeout-ms` (Connect: up to 10 digits).
 */
export function requestedTimeoutMs(headers: Headers): number | undefined {
  const grpcTimeout = headers.get("grpc-timeout");
  if (grpcTimeout) {
    const match = /^(\d{1,8})([HMSmun])$/.exec(grpcTimeout);
    if (!match) return undefined;
    const units: Record<string, number> = { H: 3.6e6, M: 6e4, S: 1e3, m: 1, u: 1e-3, n: 1e-6 };
    return Number(match[1]) * units[match[2]!]!;
  }
  const connectTimeout = headers.get("connect-timeout-ms");
  if (connectTimeout && /^\d{1,10}$/.test(connectTimeout)) return Number(connectTimeout);
  return undefined;
}

function metadataText(key: string, value: string | Uint8Array): string {
  if (key.endsWith("-bin")) {
    return toBase64(typeof value === "string" ? encoder.encode(value) : value);
  }
  return typeof value === "string" ? value : new TextDecoder().decode(value);
}

/** gRPC's percent-encoding of grpc-message: printable ASCII except '%' stays as it is. */
export function percentEncode(text: string): string {
  let out = "";
  for (const byte of encoder.encode(text)) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25
      ? String.fromCharCode(byte)
      : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

export function percentDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/=+$/, "");
}

export function fromBase64(text: string): Uint8Array {
  const padded = text + "=".repeat((4 - (text.length % 4)) % 4);
  try {
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  } catch {
    return new Uint8Array(0);
  }
}
