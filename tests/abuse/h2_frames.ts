/**
 * A small HTTP/2 frame writer for abuse tests: raw frames (RFC 9113) on a plaintext connection
 * with prior knowledge, so tests can send what no well-behaved client library would (rapid
 * resets, CONTINUATION floods, GOAWAY with open streams, zero windows). Loopback only.
 */

import { concatBytes } from "../../crypto/primitives.ts";

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;

export const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export function h2frame(
  type: number,
  flags: number,
  streamId: number,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const out = new Uint8Array(9 + payload.length);
  out[0] = (payload.length >> 16) & 0xff;
  out[1] = (payload.length >> 8) & 0xff;
  out[2] = payload.length & 0xff;
  out[3] = type;
  out[4] = flags;
  new DataView(out.buffer).setUint32(5, streamId & 0x7fffffff);
  out.set(payload, 9);
  return out;
}

export function settings(entries: Array<[number, number]> = []): Uint8Array {
  const payload = new Uint8Array(entries.length * 6);
  const view = new DataView(payload.buffer);
  entries.forEach(([id, value], i) => {
    view.setUint16(i * 6, id);
    view.setUint32(i * 6 + 2, value);
  });
  return h2frame(FrameType.SETTINGS, 0, 0, payload);
}

export const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;

export function rstStream(streamId: number, code = 0x8 /* CANCEL */): Uint8Array {
  const payload = new Uint8Array(4);
  new DataView(payload.buffer).setUint32(0, code);
  return h2frame(FrameType.RST_STREAM, 0, streamId, payload);
}

export function ping(data = 0): Uint8Array {
  const payload = new Uint8Array(8);
  new DataView(payload.buffer).setUint32(4, data);
  return h2frame(FrameType.PING, 0, 0, payload);
}

export function goaway(lastStreamId: number, code = 0): Uint8Array {
  const payload = new Uint8Array(8);
  const view = new DataView(payload.buffer);
  view.setUint32(0, lastStreamId);
  view.setUint32(4, code);
  return h2frame(FrameType.GOAWAY, 0, 0, payload);
}

/** HPACK: every field a literal without indexing, no Huffman (RFC 7541 6.2.2). */
export function hpack(fields: Array<[string, string]>): Uint8Array {
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  const integer = (value: number, prefixBits: number, firstByte: number) => {
    const max = (1 << prefixBits) - 1;
    if (value < max) {
      bytes.push(firstByte | value);
      return;
    }
    bytes.push(firstByte | max);
    value -= max;
    while (value >= 128) {
      bytes.push((value % 128) + 128);
      value = Math.floor(value / 128);
    }
    bytes.push(value);
  };
  for (const [name, value] of fields) {
    bytes.push(0x00);
    const n = encoder.encode(name);
    integer(n.length, 7, 0);
    bytes.push(...n);
    const v = encoder.encode(value);
    integer(v.length, 7, 0);
    for (const byte of v) bytes.push(byte);
  }
  return new Uint8Array(bytes);
}

/** The header block of a gRPC-Web (or native gRPC) POST to `path`. */
export function requestHeaders(
  path: string,
  contentType = "application/grpc-web+proto",
  extra: Array<[string, string]> = [],
): Uint8Array {
  return hpack([
    [":method", "POST"],
    [":scheme", "http"],
    [":path", path],
    [":authority", "127.0.0.1"],
    ["content-type", contentType],
    ["te", "trailers"],
    ...extra,
  ]);
}

export function headers(streamId: number, block: Uint8Array, endStream = false): Uint8Array {
  return h2frame(
    FrameType.HEADERS,
    Flag.END_HEADERS | (endStream ? Flag.END_STREAM : 0),
    streamId,
    block,
  );
}

/** A 5-byte gRPC frame around `message`, as a DATA frame ending the stream. */
export function grpcData(
  streamId: number,
  message: Uint8Array = new Uint8Array(0),
  endStream = true,
): Uint8Array {
  const body = new Uint8Array(5 + message.length);
  new DataView(body.buffer).setUint32(1, message.length);
  body.set(message, 5);
  return h2frame(FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId, body);
}

/** A raw connection: writes never throw (the server may close on us), reads are drained. */
export class RawH2 {
  #conn: Deno.TcpConn;
  #closed = false;
  /** Frame types received, by type (counted by the background reader). */
  readonly received = new Map<number, number>();
  readonly #onFrame: Array<(type: number, streamId: number) => void> = [];
  readonly done: Promise<void>;

  private constructor(conn: Deno.TcpConn, read: boolean) {
    this.#conn = conn;
    this.done = read ? this.#read() : Promise.resolve();
  }

  static async open(port: number, options: { read?: boolean; preface?: boolean } = {}) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const raw = new RawH2(conn, options.read ?? true);
    if (options.preface ?? true) await raw.write(PREFACE, settings());
    return raw;
  }

  async write(...chunks: Uint8Array[]): Promise<boolean> {
    if (this.#closed) return false;
    const buffer = concatBytes(...chunks);
    try {
      let written = 0;
      while (written < buffer.length) written += await this.#conn.write(buffer.subarray(written));
      return true;
    } catch {
      this.#closed = true;
      return false;
    }
  }

  /** Resolves when a frame of `type` arrives on `streamId` (or rejects after `ms`). */
  waitFor(type: number, streamId: number, ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no such frame in time")), ms);
      this.#onFrame.push((t, s) => {
        if (t === type && s === streamId) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }

  async #read(): Promise<void> {
    let pending = new Uint8Array(0);
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        const joined = new Uint8Array(pending.length + n);
        joined.set(pending);
        joined.set(buffer.subarray(0, n), pending.length);
        let offset = 0;
        while (joined.length - offset >= 9) {
          const length = (joined[offset]! << 16) | (joined[offset + 1]! << 8) | joined[offset + 2]!;
          if (joined.length - offset < 9 + length) break;
          const type = joined[offset + 3]!;
          const streamId = new DataView(joined.buffer, offset + 5, 4).getUint32(0) & 0x7fffffff;
          this.received.set(type, (this.received.get(type) ?? 0) + 1);
          for (const listener of this.#onFrame) listener(type, streamId);
          offset += 9 + length;
        }
        pending = joined.slice(offset);
      }
    } catch {
      // Reset by the server: the attack connection is over.
    }
    this.#closed = true;
  }

  close(): void {
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}
