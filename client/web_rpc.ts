/**
 * gRPC-Web over `fetch`: clients for the generated service definitions with the call shapes of
 * grpc-js clients (a unary method takes a callback; streams are event emitters with
 * `data`/`end`/`error`/`status`, `write`, `end`, `cancel`), so the SDK, tests and tools switch
 * transport without touching call sites. Any fetch works: Deno's (HTTP/2 with prior knowledge
 * on plaintext, full duplex, so bidirectional streams work) and browsers' (half duplex: the SDK
 * uses ReceiveEvents + Acknowledge and SendMessage there).
 */

import { EventEmitter } from "node:events";
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import { frame, type WireStatus } from "../proto/web_wire.ts";
import { readGrpcWebBody, toGrpcStatus } from "../proto/web_status.ts";

/** Request-stream bytes queued before write() asks the caller to wait for "drain". */
const REQUEST_BUFFER_BYTES = 4 * 1024 * 1024;

export interface WebRpcOptions {
  /** "http://host:port" or "https://host:port" of the gRPC-Web listener. */
  baseUrl: string;
  /** Deno's HTTP client (HTTP/2 prior knowledge); absent in browsers. */
  httpClient?: Deno.HttpClient;
  /** Bound on one response message (defaults to 8 MiB). */
  maxResponseBytes?: number;
}

type Callback = (error: grpc.ServiceError | null, value?: unknown) => void;

interface CallArgs {
  metadata: grpc.Metadata;
  deadline: number | undefined;
  callback: Callback | undefined;
}

/** grpc-js accepts (req, [metadata], [options], [callback]); so does this client. */
function parseArgs(args: unknown[]): CallArgs {
  let metadata = new grpc.Metadata();
  let deadline: number | undefined;
  let callback: Callback | undefined;
  for (const arg of args) {
    if (typeof arg === "function") callback = arg as Callback;
    else if (arg instanceof grpc.Metadata) metadata = arg;
    else if (arg && typeof arg === "object" && "deadline" in arg) {
      const value = (arg as { deadline?: grpc.Deadline }).deadline;
      deadline = value instanceof Date ? value.getTime() : value;
    }
  }
  return { metadata, deadline, callback };
}

export function serviceError(status: WireStatus): grpc.ServiceError {
  const error = new Error(`${status.code} ${grpc.status[status.code]}: ${status.message}`);
  return Object.assign(error, toGrpcStatus(status));
}

const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

function unavailable(message: string): WireStatus {
  return { code: grpc.status.UNAVAILABLE, message, metadata: [] };
}

/** The status for an HTTP answer that is not a gRPC-Web response (a proxy's error page). */
function httpStatus(response: Response): WireStatus {
  const code = response.status === 401
    ? grpc.status.UNAUTHENTICATED
    : response.status === 403
    ? grpc.status.PERMISSION_DENIED
    : response.status === 404
    ? grpc.status.UNIMPLEMENTED
    : response.status === 429 || response.status >= 502
    ? grpc.status.UNAVAILABLE
    : grpc.status.UNKNOWN;
  return { code, message: `HTTP ${response.status} from the server`, metadata: [] };
}

/** One call: sends, reads frames as they arrive, reports messages and the final status. */
class WebCall extends EventEmitter {
  readonly #abort = new AbortController();
  #requestBody: ReadableStreamDefaultController<Uint8Array> | undefined;
  #drainWanted = false;
  #done = false;
  /** Set while the reader asked for no more messages (pause); resolved by resume. */
  #paused: PromiseWithResolvers<void> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly method: grpc.MethodDefinition<unknown, unknown>,
    private readonly options: WebRpcOptions,
    private readonly args: CallArgs,
  ) {
    super();
  }

  start(request?: unknown): void {
    const headers = new Headers({
      "content-type": "application/grpc-web+proto",
      "x-grpc-web": "1",
    });
    for (const [key, value] of Object.entries(this.args.metadata.getMap())) {
      if (typeof value === "string") headers.set(key, value);
    }
    if (this.args.deadline !== undefined && Number.isFinite(this.args.deadline)) {
      const ms = Math.max(1, Math.min(99_999_999, Math.round(this.args.deadline - Date.now())));
      headers.set("grpc-timeout", `${ms}m`);
      this.#timer = setTimeout(() => {
        this.#finish({
          code: grpc.status.DEADLINE_EXCEEDED,
          message: "deadline exceeded",
          metadata: [],
        });
      }, ms);
    }
    let body: BodyInit;
    if (this.method.requestStream) {
      // Bounded by bytes: write() says false past REQUEST_BUFFER_BYTES, "drain" says when the
      // connection took enough to write again (a 200 MiB upload never sits in memory).
      body = new ReadableStream<Uint8Array>({
        start: (controller) => {
          this.#requestBody = controller;
        },
        pull: () => {
          if (this.#drainWanted) {
            this.#drainWanted = false;
            this.emit("drain");
          }
        },
      }, { highWaterMark: REQUEST_BUFFER_BYTES, size: (chunk) => chunk.byteLength });
    } else {
      body = frame(0, this.method.requestSerialize(request));
    }
    const init = {
      method: "POST",
      headers,
      body,
      signal: this.#abort.signal,
      ...(this.method.requestStream ? { duplex: "half" } : {}),
      ...(this.options.httpClient ? { client: this.options.httpClient } : {}),
    };
    fetch(`${this.options.baseUrl}${this.method.path}`, init as RequestInit)
      .then((response) => this.#read(response))
      .then(
        (status) => this.#finish(status),
        (error) =>
          this.#finish(
            unavailable(
              `connection to ${this.options.baseUrl} failed: ${(error as Error).message}`,
            ),
          ),
      );
  }

  async #read(response: Response): Promise<WireStatus> {
    if (response.status !== 200 || !response.body) {
      await response.body?.cancel().catch(() => {});
      return httpStatus(response);
    }
    const maxBytes = this.options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    return await readGrpcWebBody(response.body, maxBytes, (payload) => {
      if (this.#done) return;
      let message: unknown;
      try {
        message = this.method.responseDeserialize(Buffer.from(payload));
      } catch {
        return { code: grpc.status.INTERNAL, message: "malformed response message", metadata: [] };
      }
      this.emit("message", message);
      // Backpressure: a paused reader stops the body here, so HTTP/2 flow control holds the
      // server back instead of messages piling up in memory.
      return this.#paused?.promise.then(() => undefined);
    });
  }

  pause(): void {
    if (!this.#done) this.#paused ??= Promise.withResolvers<void>();
  }

  resume(): void {
    this.#paused?.resolve();
    this.#paused = undefined;
  }

  #finish(status: WireStatus): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#timer);
    this.resume();
    this.#abort.abort();
    // Aborting the fetch alone leaves Deno's HTTP/2 request stream open; erroring the request
    // body resets it, so the server sees the call end.
    try {
      this.#requestBody?.error(new Error("call finished"));
    } catch { /* already closed */ }
    this.emit("finished", status);
  }

  write(message: unknown): boolean {
    if (this.#done || !this.#requestBody) return false;
    try {
      this.#requestBody.enqueue(frame(0, this.method.requestSerialize(message)));
    } catch {
      return false;
    }
    const room = (this.#requestBody.desiredSize ?? 0) > 0;
    if (!room) this.#drainWanted = true;
    return room;
  }

  endRequest(): void {
    try {
      this.#requestBody?.close();
    } catch { /* already closed */ }
  }

  cancel(): void {
    this.#finish({ code: grpc.status.CANCELLED, message: "cancelled on client", metadata: [] });
  }
}

/** A stream as grpc-js clients hand it out: data, end/error, then status. */
class ClientStream extends EventEmitter {
  constructor(private readonly call: WebCall) {
    super();
    call.on("message", (message) => this.emit("data", message));
    call.on("drain", () => this.emit("drain"));
    call.on("finished", (status: WireStatus) => {
      if (status.code === grpc.status.OK) this.emit("end");
      else if (this.listenerCount("error") > 0) this.emit("error", serviceError(status));
      this.emit("status", {
        code: status.code,
        details: status.message,
        metadata: serviceError(status).metadata,
      });
    });
  }

  write(message: unknown): boolean {
    return this.call.write(message);
  }

  /** Stops reading messages until resume() (as on a grpc-js client stream). */
  pause(): void {
    this.call.pause();
  }

  resume(): void {
    this.call.resume();
  }

  end(): void {
    this.call.endRequest();
  }

  cancel(): void {
    this.call.cancel();
  }
}

/**
 * A client for one generated service definition (e.g. `AuthServiceService`), method for method
 * the shape of its grpc-js client: cast it to that client's type.
 */
export function webServiceClient(
  definition: object,
  options: WebRpcOptions,
): Record<string, (...args: unknown[]) => unknown> {
  const client: Record<string, (...args: unknown[]) => unknown> = {};
  const methods = Object.entries(definition) as [string, grpc.MethodDefinition<unknown, unknown>][];
  for (const [name, method] of methods) {
    if (!method.requestStream && !method.responseStream) {
      client[name] = (request: unknown, ...rest: unknown[]) => {
        const args = parseArgs(rest);
        const call = new WebCall(method, options, args);
        let value: unknown;
        call.on("message", (message) => value = message);
        call.on("finished", (status: WireStatus) => {
          if (status.code === grpc.status.OK && value !== undefined) args.callback?.(null, value);
          else if (status.code === grpc.status.OK) {
            args.callback?.(
              serviceError({
                ...status,
                code: grpc.status.INTERNAL,
                message: "no response message",
              }),
            );
          } else args.callback?.(serviceError(status));
        });
        call.start(request);
        return { cancel: () => call.cancel() };
      };
    } else if (method.requestStream && !method.responseStream) {
      // Client streaming: writes, then one response through the callback.
      client[name] = (...rest: unknown[]) => {
        const args = parseArgs(rest);
        const call = new WebCall(method, options, args);
        let value: unknown;
        call.on("message", (message) => value = message);
        call.on("finished", (status: WireStatus) => {
          if (status.code !== grpc.status.OK) args.callback?.(serviceError(status));
          else args.callback?.(null, value);
        });
        call.start();
        return {
          write: (message: unknown) => call.write(message),
          end: () => call.endRequest(),
          cancel: () => call.cancel(),
          // write() returning false waits for "drain", as on a grpc-js client stream.
          once: (event: string, listener: (...args: unknown[]) => void) =>
            call.once(event, listener),
        };
      };
    } else if (method.requestStream) {
      client[name] = (...rest: unknown[]) => {
        const call = new WebCall(method, options, parseArgs(rest));
        const stream = new ClientStream(call);
        call.start();
        return stream;
      };
    } else {
      client[name] = (request: unknown, ...rest: unknown[]) => {
        const call = new WebCall(method, options, parseArgs(rest));
        const stream = new ClientStream(call);
        call.start(request);
        return stream;
      };
    }
  }
  return client;
}

/** Deno's HTTP client for a base URL: HTTP/2 with prior knowledge on plaintext. */
export function denoHttpClient(baseUrl: string): Deno.HttpClient | undefined {
  if (typeof Deno === "undefined" || typeof Deno.createHttpClient !== "function") return undefined;
  return baseUrl.startsWith("http://")
    ? Deno.createHttpClient({ http2: true, http1: false })
    : Deno.createHttpClient({});
}
