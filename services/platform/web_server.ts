/**
 * The gRPC-Web and Connect listener on `Deno.serve` (hyper's HTTP/2 with prior knowledge and
 * HTTP/1.1; TLS when configured). It serves every route of the GrpcServer through the same
 * wrapped implementations, so auth, limits, deadlines, metrics, request ids and the error
 * mapping are the native listener's. It exists because Deno 2.9.6's node:http2 (nghttp2) aborts
 * the process on some client GOAWAYs (denoland/deno#36788); hyper does not.
 *
 * Over HTTP/2 every call kind works, bidirectional streams included. Over HTTP/1.1 unary and
 * server-streaming calls work; a bidirectional call gets its response only once the request body
 * ended, so HTTP/1.1 clients use the half-duplex forms (ReceiveEvents + Acknowledge, SendMessage).
 */

import { EventEmitter } from "node:events";
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import { concatBytes, constantTimeEqual } from "../../crypto/primitives.ts";
import {
  FrameError,
  FrameReader,
  protocolOf,
  requestedTimeoutMs,
  type WireProtocol,
  type WireStatus,
} from "../../proto/web_wire.ts";
import { fromGrpcStatus } from "../../proto/web_status.ts";
import type { GrpcLimits } from "./config.ts";
import { requestIdOf, type Route } from "./grpc_server.ts";
import { trace } from "@opentelemetry/api";
import { CorsPolicy } from "./cors.ts";
import { FORWARDED_HEADERS, GATEWAY_HEADER, GATEWAY_PEER_HEADER } from "./gateway_headers.ts";
import type { Logger } from "./log.ts";
import {
  CONTENT_TYPES,
  frameProblem,
  frameStatus,
  unaryResponse,
  type WebCallInit,
  WebStreamCall,
} from "./web_call.ts";

export interface WebServerOptions {
  host: string;
  port: number;
  limits: GrpcLimits;
  log: Logger;
  routes: ReadonlyMap<string, Route>;
  tls?: { cert: string; key: string };
  /**
   * A secret the native gRPC gateway workers present (x-guardyn-gateway) so their
   * x-forwarded-for (the real client) is believed; unset: only TRUSTED_PROXY_CIDRS count.
   */
  gatewaySecret?: string;
  /** Browser origins allowed to call (HTTP_CORS_ORIGINS); none by default. */
  corsOrigins?: readonly string[];
}

export interface WebServer {
  port: number;
  close(): Promise<void>;
}

export function startWebServer(options: WebServerOptions): WebServer {
  const cors = new CorsPolicy(options.corsOrigins ?? []);
  const server = Deno.serve({
    hostname: options.host,
    port: options.port,
    ...(options.tls ?? {}),
    onListen: () => {},
    onError: (error) => {
      options.log.error("web listener error", { error });
      return new Response("internal error\n", { status: 500 });
    },
  }, async (request, info) => {
    const origin = request.headers.get("origin");
    if (request.method === "OPTIONS") return cors.preflight(origin);
    const response = await serveCall(request, peerOf(info.remoteAddr), options);
    return origin === null ? response : cors.decorate(response, origin);
  });
  return { port: server.addr.port, close: () => server.shutdown() };
}

function peerOf(address: Deno.Addr): string {
  if (address.transport !== "tcp" && address.transport !== "udp") return "unix:local";
  const host = address.hostname;
  return host.includes(":") ? `ipv6:[${host}]:${address.port}` : `ipv4:${host}:${address.port}`;
}

async function serveCall(
  request: Request,
  peer: string,
  options: WebServerOptions,
): Promise<Response> {
  if (request.method !== "POST") {
    return new Response("gRPC-Web and Connect calls are POST requests\n", {
      status: 405,
      headers: { allow: "POST" },
    });
  }
  const path = pathOf(request.url);
  const route = options.routes.get(path);
  const streaming = route ? route.method.requestStream || route.method.responseStream : false;
  const kind = protocolOf(request.headers.get("content-type"), streaming);
  if ("refused" in kind) {
    await request.body?.cancel().catch(() => {});
    return new Response(`${kind.refused}\n`, { status: 415 });
  }
  const requestId = requestIdOf(request.headers.get("x-request-id"));
  // With OTEL_DENO=true Deno makes a span per HTTP request; name it after the RPC and carry the
  // request id the logs and the response carry. Without it there is no span: nothing happens.
  trace.getActiveSpan()?.updateName(path).setAttributes({
    "rpc.system": "grpc",
    "rpc.method": path,
    "guardyn.request_id": requestId,
  });
  if (!route) {
    await request.body?.cancel().catch(() => {});
    return unaryResponse(kind.protocol, requestId, {
      status: { code: grpc.status.UNIMPLEMENTED, message: `unknown method ${path}`, metadata: [] },
    });
  }
  const metadata = requestMetadata(request.headers, requestId);
  const callPeer = gatewayPeer(request.headers, options.gatewaySecret) ?? peer;
  const timeoutMs = requestedTimeoutMs(request.headers);
  const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeoutMs;
  const init: WebCallInit = {
    protocol: kind.protocol,
    method: route.method,
    metadata,
    peer: callPeer,
    deadline,
    requestId,
  };
  // A request message must arrive within the unary deadline: a client that sends headers and
  // then nothing cannot hold a call (and its memory) open.
  const bodyDeadlineMs = Math.min(
    options.limits.maxUnaryDeadlineMs,
    Math.max(0, deadline - Date.now()),
  );
  const { maxRequestBytes } = options.limits;
  if (!streaming) return await serveUnary(request, route, init, maxRequestBytes, bodyDeadlineMs);
  return serveStream(request, route, init, maxRequestBytes, bodyDeadlineMs);
}

/** The path of an absolute request URL, without a URL parse per call (the hot path). */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const query = url.indexOf("?", start);
  return query < 0 ? url.slice(start) : url.slice(start, query);
}

function requestMetadata(headers: Headers, requestId: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const key of FORWARDED_HEADERS) {
    const value = headers.get(key);
    if (value !== null) metadata.set(key, value);
  }
  metadata.set("x-request-id", requestId);
  return metadata;
}

/**
 * A native gRPC gateway worker forwards its client's TCP peer; it is believed only with the
 * worker's secret (compared in constant time), so nobody else can pick their address.
 */
function gatewayPeer(headers: Headers, gatewaySecret: string | undefined): string | undefined {
  if (gatewaySecret === undefined) return undefined;
  const presented = headers.get(GATEWAY_HEADER);
  const client = headers.get(GATEWAY_PEER_HEADER);
  const encode = (text: string) => new TextEncoder().encode(text);
  if (
    presented === null || client === null ||
    !constantTimeEqual(encode(presented), encode(gatewaySecret))
  ) {
    return undefined;
  }
  return /^ipv[46]:[0-9A-Fa-f.:\[\]]{1,60}:\d{1,5}$/.test(client) ? client : undefined;
}

type SingleMessage = { payload: Uint8Array } | { status: WireStatus };

/**
 * Takes the frames of a request that holds exactly one message, chunk by chunk: a frame over the
 * limit is refused from its header, a second message or a bad flag at once.
 */
class SingleFrame {
  readonly #reader: FrameReader;
  #payload: Uint8Array | undefined;

  constructor(maxBytes: number) {
    this.#reader = new FrameReader(maxBytes);
  }

  push(chunk: Uint8Array): void {
    for (const { flags, payload } of this.#reader.push(chunk)) {
      const problem = frameProblem(flags);
      if (problem) throw new FrameError(problem);
      if (this.#payload) throw new FrameError("a unary request holds exactly one message");
      this.#payload = payload;
    }
  }

  /** The message, once the body ended. */
  finish(): Uint8Array {
    if (this.#reader.pendingBytes > 0) {
      throw new FrameError("the request body ends inside a message (truncated)");
    }
    if (!this.#payload) throw new FrameError("the request holds no message");
    return this.#payload;
  }
}

/** Reads a request body holding exactly one message (framed unless Connect unary). */
async function readSingleMessage(
  request: Request,
  protocol: WireProtocol,
  maxBytes: number,
  signal?: AbortSignal,
): Promise<SingleMessage> {
  const framed = protocol !== "connect-unary";
  const tooLarge = () => new FrameError(`the request exceeds the limit of ${maxBytes} bytes`, true);
  // A declared length within the limit: read it at once (cheaper than iterating the stream).
  const declared = Number(request.headers.get("content-length") ?? NaN);
  try {
    if (Number.isInteger(declared)) {
      if (declared > maxBytes + (framed ? 5 : 0)) {
        await request.body?.cancel().catch(() => {});
        throw tooLarge();
      }
      const bytes = await request.bytes();
      if (!framed) return { payload: bytes };
      const single = new SingleFrame(maxBytes);
      single.push(bytes);
      return { payload: single.finish() };
    }
    if (!framed) {
      const chunks: Uint8Array[] = [];
      let total = 0;
      for await (const chunk of chunksOf(request.body, signal)) {
        total += chunk.length;
        if (total > maxBytes) throw tooLarge();
        chunks.push(chunk);
      }
      return { payload: chunks.length === 1 ? chunks[0]! : concatBytes(...chunks) };
    }
    const single = new SingleFrame(maxBytes);
    for await (const chunk of chunksOf(request.body, signal)) single.push(chunk);
    return { payload: single.finish() };
  } catch (error) {
    if (error instanceof FrameError) return { status: frameStatus(error) };
    throw error;
  }
}

/** The body's chunks; `signal` cancels the read (the body is released, the loop ends). */
async function* chunksOf(
  body: ReadableStream<Uint8Array> | null,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  if (!body) return;
  const reader = body.getReader();
  const cancel = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", cancel, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    signal?.removeEventListener("abort", cancel);
    reader.releaseLock();
  }
}

/** readSingleMessage, or DEADLINE_EXCEEDED (and the body cancelled) after `ms`. */
async function readWithin(
  request: Request,
  protocol: WireProtocol,
  maxBytes: number,
  ms: number,
): Promise<SingleMessage> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const abandon = new AbortController();
  const late = new Promise<{ status: WireStatus }>((resolve) => {
    timer = setTimeout(() => {
      abandon.abort();
      resolve({
        status: {
          code: grpc.status.DEADLINE_EXCEEDED,
          message: `the request message did not arrive within ${Math.round(ms)} ms`,
          metadata: [["guardyn-error-reason", "DEADLINE_EXCEEDED"]],
        },
      });
    }, ms);
  });
  try {
    return await Promise.race([
      readSingleMessage(request, protocol, maxBytes, abandon.signal),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function serveUnary(
  request: Request,
  route: Route,
  init: WebCallInit,
  maxBytes: number,
  bodyDeadlineMs: number,
): Promise<Response> {
  let body: SingleMessage;
  try {
    body = await readWithin(request, init.protocol, maxBytes, bodyDeadlineMs);
  } catch {
    // The client reset the request: nobody to answer.
    return new Response(null, { status: 499 });
  }
  if ("status" in body) return unaryResponse(init.protocol, init.requestId, body);
  const call = Object.assign(new EventEmitter(), {
    metadata: init.metadata,
    request: init.method.requestDeserialize(bufferOf(body.payload)),
    cancelled: false,
    getPeer: () => init.peer,
    getDeadline: () => init.deadline,
    getPath: () => init.method.path,
    sendMetadata: () => {},
  });
  const outcome = await new Promise<{ message: Uint8Array } | { status: WireStatus }>(
    (resolve) => {
      (route.implementation as grpc.handleUnaryCall<unknown, unknown>)(
        call as unknown as grpc.ServerUnaryCall<unknown, unknown>,
        (error, value) => {
          if (error) resolve({ status: fromGrpcStatus(error as Partial<grpc.StatusObject>) });
          else resolve({ message: init.method.responseSerialize(value) });
        },
      );
    },
  );
  // A unary handler runs to its end: a client that left just gets no answer. (request.signal
  // is not used: in Deno 2.9 it also aborts after every successful response.)
  return unaryResponse(init.protocol, init.requestId, outcome);
}

function serveStream(
  request: Request,
  route: Route,
  init: WebCallInit,
  maxBytes: number,
  bodyDeadlineMs: number,
): Response {
  // A client that goes away cancels the response body: WebStreamCall sees it as cancelled.
  const call = new WebStreamCall(init);
  const method = init.method;
  const start = () => {
    if (method.requestStream && !method.responseStream) {
      (route.implementation as grpc.handleClientStreamingCall<unknown, unknown>)(
        call as unknown as grpc.ServerReadableStream<unknown, unknown>,
        (error, value) => {
          if (error) call.emit("error", error);
          else {
            call.write(value);
            call.end();
          }
        },
      );
    } else {
      (route.implementation as grpc.handleServerStreamingCall<unknown, unknown>)(
        call as unknown as grpc.ServerWritableStream<unknown, unknown>,
      );
    }
  };
  if (method.requestStream) {
    start();
    void pumpRequestStream(request, call, method, maxBytes);
  } else {
    void readWithin(request, init.protocol, maxBytes, bodyDeadlineMs).then((body) => {
      if ("status" in body) return call.refuse(body.status);
      call.request = method.requestDeserialize(bufferOf(body.payload));
      start();
    }, () => call.clientGone());
  }
  return new Response(call.body, {
    status: 200,
    headers: { "content-type": CONTENT_TYPES[init.protocol], "x-request-id": init.requestId },
  });
}

/** Request stream → `data` events (after the handler listens), honouring pause/resume. */
async function pumpRequestStream(
  request: Request,
  call: WebStreamCall,
  method: grpc.MethodDefinition<unknown, unknown>,
  maxBytes: number,
): Promise<void> {
  const reader = new FrameReader(maxBytes);
  const body = request.body;
  if (!body) return void call.emit("end");
  const listening = call.listenerCount("data") > 0
    ? Promise.resolve()
    : new Promise<void>((resolve) => {
      const onListener = (event: string | symbol) => {
        if (event !== "data") return;
        call.off("newListener", onListener);
        resolve();
      };
      call.on("newListener", onListener);
      call.once("cancelled", () => resolve());
    });
  const stream = body.getReader();
  const stopReading = () => stream.cancel().catch(() => {});
  call.once("finished", stopReading);
  try {
    await listening;
    while (!call.finished) {
      const { done, value } = await stream.read();
      if (done) break;
      for (const { flags, payload } of reader.push(value)) {
        const problem = frameProblem(flags);
        if (problem) throw new FrameError(problem);
        await call.readable();
        if (call.finished) return;
        call.emit("data", method.requestDeserialize(bufferOf(payload)));
      }
    }
    if (call.finished) return;
    if (reader.pendingBytes > 0) {
      throw new FrameError("the request stream ends inside a message (truncated)");
    }
    call.emit("end");
  } catch (error) {
    if (error instanceof FrameError) call.refuse(error);
    else call.clientGone();
  } finally {
    call.off("finished", stopReading);
    stopReading();
  }
}

/** A Buffer view of the bytes (Buffer.from(Uint8Array) would copy a 1 MiB chunk each time). */
function bufferOf(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
