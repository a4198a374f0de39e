/**
 * A native gRPC gateway worker: grpc-js on GRPC_PORT (shared with its sibling workers through
 * SO_REUSEPORT), forwarding every call, bytes untouched, to its instance's gRPC-Web listener on
 * loopback. It holds no state: when Deno's node:http2 aborts in nghttp2 (denoland/deno#36788),
 * only this worker's open calls are lost, the siblings keep the port, and the supervisor
 * (grpc_gateway.ts) starts a new one.
 *
 * Environment: GATEWAY_UPSTREAM (http://127.0.0.1:8080), GATEWAY_SECRET, GATEWAY_ROUTES (JSON),
 * GATEWAY_LIMITS (JSON), GRPC_HOST, GRPC_PORT.
 */

import net from "node:net";
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import { frame, type WireStatus } from "../../proto/web_wire.ts";
import { readGrpcWebBody, toGrpcStatus } from "../../proto/web_status.ts";
import {
  FORWARDED_HEADERS,
  GATEWAY_HEADER,
  GATEWAY_PEER_HEADER,
} from "../platform/gateway_headers.ts";

export interface GatewayRoute {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
}

export interface GatewayLimits {
  maxRequestBytes: number;
  maxResponseBytes: number;
  maxConcurrentStreams: number;
}

const passthrough = (bytes: Buffer) => bytes;

function env(name: string): string {
  const value = Deno.env.get(name);
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
}

export function gatewayServer(
  routes: GatewayRoute[],
  limits: GatewayLimits,
  upstream: string,
  secret: string,
): grpc.Server {
  const http = Deno.createHttpClient({ http2: true, http1: false });
  const server = new grpc.Server({
    "grpc.max_receive_message_length": limits.maxRequestBytes,
    "grpc.max_send_message_length": limits.maxResponseBytes,
    "grpc.max_concurrent_streams": limits.maxConcurrentStreams,
    "grpc.keepalive_time_ms": 60_000,
    "grpc.keepalive_timeout_ms": 20_000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc-node.max_session_memory": 64,
    "grpc.enable_channelz": 0,
  });
  const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const route of routes) {
    const name = route.path;
    definition[name] = {
      path: route.path,
      requestStream: route.requestStream,
      responseStream: route.responseStream,
      requestSerialize: passthrough,
      requestDeserialize: passthrough,
      responseSerialize: passthrough,
      responseDeserialize: passthrough,
    };
    implementation[name] = forwarder(route, upstream, secret, http, limits.maxResponseBytes);
  }
  server.addService(definition, implementation);
  return server;
}

function headersOf(
  call: { metadata: grpc.Metadata; getPeer(): string; getDeadline(): grpc.Deadline },
  secret: string,
) {
  const headers = new Headers({
    "content-type": "application/grpc-web+proto",
    [GATEWAY_HEADER]: secret,
    [GATEWAY_PEER_HEADER]: call.getPeer(),
  });
  for (const key of FORWARDED_HEADERS) {
    const value = call.metadata.get(key)[0];
    if (typeof value === "string") headers.set(key, value);
  }
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  if (Number.isFinite(at) && at > 0) {
    headers.set("grpc-timeout", `${Math.max(1, Math.min(99_999_999, at - Date.now()))}m`);
  }
  return headers;
}

const UPSTREAM_DOWN: WireStatus = {
  code: grpc.status.UNAVAILABLE,
  message: "the instance behind this gateway did not answer",
  metadata: [],
};

/** Reads the upstream response, handing each message to `onMessage`; resolves its status. */
async function readUpstream(
  response: Response,
  maxBytes: number,
  onMessage: (payload: Uint8Array) => Promise<void> | void,
): Promise<WireStatus> {
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    return { ...UPSTREAM_DOWN, message: `the instance answered HTTP ${response.status}` };
  }
  return await readGrpcWebBody(response.body, maxBytes, onMessage);
}

function forwarder(
  route: GatewayRoute,
  upstream: string,
  secret: string,
  client: Deno.HttpClient,
  maxResponseBytes: number,
) {
  const url = `${upstream}${route.path}`;
  const send = (body: BodyInit, headers: Headers, signal: AbortSignal) =>
    fetch(url, { method: "POST", body, headers, signal, client, duplex: "half" } as RequestInit);

  if (!route.requestStream && !route.responseStream) {
    return (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const controller = new AbortController();
      call.on("cancelled", () => controller.abort());
      let message: Buffer | undefined;
      send(frame(0, call.request), headersOf(call, secret), controller.signal)
        .then((response) =>
          readUpstream(response, maxResponseBytes, (payload) => {
            message = Buffer.from(payload);
          })
        )
        .catch(() => UPSTREAM_DOWN)
        .then((status) => {
          if (status.code === 0 && message) callback(null, message);
          else callback(toGrpcStatus(status.code === 0 ? UPSTREAM_DOWN : status));
        });
    };
  }

  return (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
    const controller = new AbortController();
    call.on("cancelled", () => controller.abort());
    let body: BodyInit;
    if (route.requestStream) {
      body = new ReadableStream<Uint8Array>({
        start(stream) {
          call.on("data", (message: Buffer) => {
            try {
              stream.enqueue(frame(0, message));
            } catch { /* the upstream call already ended */ }
          });
          call.on("end", () => {
            try {
              stream.close();
            } catch { /* the upstream call already ended */ }
          });
          // Aborting the fetch alone leaves its HTTP/2 stream open: error the body too.
          const reset = () => {
            controller.abort();
            try {
              stream.error(new Error("call ended"));
            } catch { /* already closed */ }
          };
          call.on("error", reset);
          call.on("cancelled", reset);
        },
      });
    } else {
      body = frame(0, (call as unknown as grpc.ServerWritableStream<Buffer, Buffer>).request);
    }
    send(body, headersOf(call, secret), controller.signal)
      .then((response) =>
        readUpstream(response, maxResponseBytes, async (payload) => {
          if (!call.write(Buffer.from(payload))) {
            await new Promise<void>((resolve) => call.once("drain", () => resolve()));
          }
        })
      )
      .catch(() => UPSTREAM_DOWN)
      .then((status) => {
        if (controller.signal.aborted) return;
        if (status.code === 0) call.end(toGrpcStatus(status).metadata);
        else call.emit("error", toGrpcStatus(status));
      });
  };
}

/** Runs this process as a gateway worker (its environment says how); never returns. */
export function runGatewayWorker(): void {
  const server = gatewayServer(
    JSON.parse(env("GATEWAY_ROUTES")),
    JSON.parse(env("GATEWAY_LIMITS")),
    env("GATEWAY_UPSTREAM"),
    env("GATEWAY_SECRET"),
  );
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const listener = net.createServer((socket) => injector.injectConnection(socket));
  listener.on("error", (error) => {
    Deno.stderr.writeSync(new TextEncoder().encode(`gateway worker: ${error.message}\n`));
    Deno.exit(1);
  });
  listener.listen(
    {
      host: env("GRPC_HOST"),
      port: Number(env("GRPC_PORT")),
      reusePort: true,
    } as net.ListenOptions,
    () => Deno.stdout.writeSync(new TextEncoder().encode("listening\n")),
  );
  Deno.addSignalListener("SIGTERM", () => {
    listener.close();
    server.tryShutdown(() => Deno.exit(0));
    setTimeout(() => Deno.exit(0), 5_000);
  });
}

if (import.meta.main) runGatewayWorker();
