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
import {
  FrameError,
  FrameReader,
  protocolOf,
  requestedTimeoutMs,
  type WireProtocol,
  type WireStatus,
} from "../../proto/web_wire.ts";
import type { GrpcLimits } from "./config.ts";
import type { Route } from "./grpc_server.ts";
import { CorsPolicy } from "./cors.ts";
import type { Logger } from "./log.ts";
import { frameProblem, unaryResponse, WebStreamCall, wireStatus } from "./web_call.ts";

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

/** Request metadata handed to handlers; everything else in the headers is transport. */
const FORWARDED_HEADERS = ["authorization", "x-request-id", "x-forwarded-for"] as const;
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;
export const GATEWAY_HEADER = "x-guardyn-gateway";
export const GATEWAY_PEER_HEADER = "x-guardyn-client-peer";

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
  const requestId = validRequestId(request.headers.get("x-request-id"));
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
  const init = {
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

function validRequestId(incoming: string | null): string {
  return incoming !== null && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
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
  if (presented === null || client === null || !sameSecret(presented, gatewaySecret)) {
    return undefined;
  }
  return /^ipv[46]:[0-9A-Fa-f.:\[\]]{1,60}:\d{1,5}$/.test(client) ? client : undefined;
}

function sameSecret(a: string, b: string): boolean {
  const left = new TextEncoder().encode(a);
  const right = new TextEncoder().encode(b);
  let difference = left.length ^ right.length;
  for (let i = 0; i < right.length; i++) difference |= (left[i] ?? 0) ^ right[i]!;
  return difference === 0;
}

interface CallInit {
  protocol: WireProtocol;
  method: grpc.MethodDefinition<unknown, unknown>;
  metadata: grpc.Metadata;
  peer: string;
  deadline: number;
  requestId: string;
}

/** Reads a request body holding exactly one message (framed unless Connect unary). */
async function readSingleMessage(
  request: Request,
  protocol: WireProtocol,
  maxBytes: number,
  signal?: AbortSignal,
): Promise<{ payload: Uint8Array } | { status: WireStatus }> {
  // A declared length within the limit: read it at once (cheaper than iterating the stream).
  const declared = Number(request.headers.get("content-length") ?? NaN);
  const framed = protocol !== "connect-unary";
  const limit = maxBytes + (framed ? 5 : 0);
  if (Number.isInteger(declared) && declared > limit) {
    await request.body?.cancel().catch(() => {});
    return {
      status: frameStatus(
        new FrameError(`the request exceeds the limit of ${maxBytes} bytes`, true),
      ),
    };
  }
  if (Number.isInteger(declared)) {
    const bytes = await request.bytes();
    if (!framed) return { payload: bytes };
    return singleFrame(bytes, maxBytes);
  }
  const reader = new FrameReader(maxBytes);
  const frames: Uint8Array[] = [];
  const bare: Uint8Array[] = [];
  let bareBytes = 0;
  try {
    for await (const chunk of chunksOf(request.body, signal)) {
      if (protocol === "connect-unary") {
        bareBytes += chunk.length;
        if (bareBytes > maxBytes) {
          throw new FrameError(`the request exceeds the limit of ${maxBytes} bytes`, true);
        }
        bare.push(chunk);
        continue;
      }
      for (const { flags, payload } of reader.push(chunk)) {
        const problem = frameProblem(flags);
        if (problem) throw new FrameError(problem);
        frames.push(payload);
        if (frames.length > 1) throw new FrameError("a unary request holds exactly one message");
      }
    }
  } catch (error) {
    if (error instanceof FrameError) return { status: frameStatus(error) };
    throw error;
  }
  if (protocol === "connect-unary") return { payload: joinChunks(bare, bareBytes) };
  if (reader.pendingBytes > 0 || frames.length !== 1) {
    return {
      status: frameStatus(
        new FrameError(
          frames.length === 0 && reader.pendingBytes === 0
            ? "the request holds no message"
            : "the request body ends inside a message (truncated)",
        ),
      ),
    };
  }
  return { payload: frames[0]! };
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
): Promise<{ payload: Uint8Array } | { status: WireStatus }> {
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

/** Exactly one well-formed frame in `bytes`, or the refusal. */
function singleFrame(
  bytes: Uint8Array,
  maxBytes: number,
): { payload: Uint8Array } | { status: WireStatus } {
  const reader = new FrameReader(maxBytes);
  try {
    const frames = reader.push(bytes);
    for (const { flags } of frames) {
      const problem = frameProblem(flags);
      if (problem) throw new FrameError(problem);
    }
    if (frames.length > 1) throw new FrameError("a unary request holds exactly one message");
    if (reader.pendingBytes > 0) {
      throw new FrameError("the request body ends inside a message (truncated)");
    }
    if (frames.length === 0) throw new FrameError("the request holds no message");
    return { payload: frames[0]!.payload };
  } catch (error) {
    if (error instanceof FrameError) return { status: frameStatus(error) };
    throw error;
  }
}

function joinChunks(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function frameStatus(error: FrameError): WireStatus {
  return {
    code: error.tooLarge ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.INVALID_ARGUMENT,
    message: error.message,
    metadata: [["guardyn-error-reason", error.tooLarge ? "LIMIT_EXCEEDED" : "INVALID_ARGUMENT"]],
  };
}

async function serveUnary(
  request: Request,
  route: Route,
  init: CallInit,
  maxBytes: number,
  bodyDeadlineMs: number,
): Promise<Response> {
  let body: Awaited<ReturnType<typeof readSingleMessage>>;
  try {
    body = await readWithin(request, init.protocol, maxBytes, bodyDeadlineMs);
  } catch {
    // The client reset the request: nobody to answer.
    return new Response(null, { status: 499 });
  }
  if ("status" in body) return unaryResponse(init.protocol, init.requestId, body);
  const call = Object.assign(new EventEmitter(), {
    metadata: init.metadata,
    request: init.method.requestDeserialize(Buffer.from(body.payload)),
    cancelled: false,
    getPeer: () => init.peer,
    getDeadline: () => init.deadline,
    getPath: () => init.method.path,
    sendMetadata: () => {},
  });
  {
    const outcome = await new Promise<{ message: Uint8Array } | { status: WireStatus }>(
      (resolve) => {
        (route.implementation as grpc.handleUnaryCall<unknown, unknown>)(
          call as unknown as grpc.ServerUnaryCall<unknown, unknown>,
          (error, value) => {
            if (error) resolve({ status: wireStatus(error as Partial<grpc.StatusObject>) });
            else resolve({ message: init.method.responseSerialize(value) });
          },
        );
      },
    );
    // A unary handler runs to its end: a client that left just gets no answer. (request.signal
    // is not used: in Deno 2.9 it also aborts after every successful response.)
    return unaryResponse(init.protocol, init.requestId, outcome);
  }
}

function serveStream(
  request: Request,
  route: Route,
  init: CallInit,
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
      call.request = method.requestDeserialize(Buffer.from(body.payload));
      start();
    }, () => call.clientGone());
  }
  return new Response(call.body, {
    status: 200,
    headers: { "content-type": contentTypeOf(init.protocol), "x-request-id": init.requestId },
  });
}

function contentTypeOf(protocol: WireProtocol): string {
  return protocol === "grpc-web" ? "application/grpc-web+proto" : "application/connect+proto";
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
        call.emit("data", method.requestDeserialize(Buffer.from(payload)));
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
