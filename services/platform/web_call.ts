/**
 * One gRPC-Web or Connect call, shaped like the grpc-js server call the kit's wrapped
 * implementations expect (metadata, peer, deadline, `data`/`end`/`cancelled`/`drain` events,
 * `write`, `end`, `emit("error", status)`), so every listener runs the same handler, auth,
 * limits, metrics and error mapping. Only the framing differs, and it lives in proto/web_wire.ts.
 */

import { EventEmitter } from "node:events";
import * as grpc from "@grpc/grpc-js";
import { fromGrpcStatus } from "../../proto/web_status.ts";
import {
  connectEndStream,
  connectErrorJson,
  connectHttpStatus,
  FLAG_COMPRESSED,
  frame,
  type FrameError,
  grpcWebTrailer,
  type WireProtocol,
  type WireStatus,
} from "../../proto/web_wire.ts";

/** Output a stream buffers before `write` returns false (the handler then waits for drain). */
const STREAM_HIGH_WATER_BYTES = 64 * 1024;

export const CONTENT_TYPES: Record<WireProtocol, string> = {
  "grpc-web": "application/grpc-web+proto",
  "connect-unary": "application/proto",
  "connect-stream": "application/connect+proto",
};

export interface WebCallInit {
  protocol: WireProtocol;
  method: grpc.MethodDefinition<unknown, unknown>;
  metadata: grpc.Metadata;
  peer: string;
  deadline: number;
  requestId: string;
}

/** The status of a request the framing refuses: too large, or malformed. */
export function frameStatus(error: FrameError): WireStatus {
  return {
    code: error.tooLarge ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.INVALID_ARGUMENT,
    message: error.message,
    metadata: [["guardyn-error-reason", error.tooLarge ? "LIMIT_EXCEEDED" : "INVALID_ARGUMENT"]],
  };
}

/** The response of a unary call, built once its outcome is known. */
export function unaryResponse(
  protocol: WireProtocol,
  requestId: string,
  outcome: { message: Uint8Array } | { status: WireStatus },
): Response {
  const headers = new Headers({ "x-request-id": requestId });
  if (protocol === "connect-unary") {
    if ("message" in outcome) {
      headers.set("content-type", CONTENT_TYPES["connect-unary"]);
      return new Response(outcome.message as Uint8Array<ArrayBuffer>, { status: 200, headers });
    }
    headers.set("content-type", "application/json");
    for (const [key, value] of outcome.status.metadata) {
      // The request id is already there: the status echoes it (one value, not two).
      if (typeof value === "string" && key !== "x-request-id") headers.append(key, value);
    }
    return new Response(JSON.stringify(connectErrorJson(outcome.status)), {
      status: connectHttpStatus(outcome.status.code),
      headers,
    });
  }
  headers.set("content-type", CONTENT_TYPES[protocol]);
  const body = "message" in outcome
    ? messageWithOk(protocol, outcome.message)
    : finalFrame(protocol, outcome.status);
  return new Response(body, { status: 200, headers });
}

const OK: WireStatus = { code: 0, message: "", metadata: [] };
/** The final frame of every successful call, encoded once (it is on every unary answer). */
const OK_FRAME = { grpcWeb: grpcWebTrailer(OK), connect: connectEndStream(OK) };

/** One message frame and the OK status frame, in a single allocation. */
function messageWithOk(protocol: WireProtocol, message: Uint8Array): Uint8Array<ArrayBuffer> {
  const ok = protocol === "grpc-web" ? OK_FRAME.grpcWeb : OK_FRAME.connect;
  const out = new Uint8Array(5 + message.length + ok.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  out.set(ok, 5 + message.length);
  return out;
}

function finalFrame(protocol: WireProtocol, status: WireStatus): Uint8Array<ArrayBuffer> {
  return protocol === "grpc-web" ? grpcWebTrailer(status) : connectEndStream(status);
}

/** A streaming call: the response body is a stream of frames ended by the status frame. */
export class WebStreamCall extends EventEmitter {
  readonly metadata: grpc.Metadata;
  request: unknown;
  cancelled = false;
  readonly body: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #finished = false;
  #needDrain = false;
  #paused: PromiseWithResolvers<void> | undefined;

  constructor(private readonly init: WebCallInit) {
    super();
    this.metadata = init.metadata;
    this.body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: () => {
        if (this.#needDrain) {
          this.#needDrain = false;
          this.emit("drain");
        }
      },
      cancel: () => this.clientGone(),
    }, new ByteLengthQueuingStrategy({ highWaterMark: STREAM_HIGH_WATER_BYTES }));
  }

  getPeer(): string {
    return this.init.peer;
  }

  getDeadline(): number {
    return this.init.deadline;
  }

  getPath(): string {
    return this.init.method.path;
  }

  /** Stream headers were fixed when the response started (content type, request id). */
  sendMetadata(_metadata: grpc.Metadata): void {}

  /** Bytes written and not yet taken by the connection. */
  get writableLength(): number {
    if (this.#finished) return 0;
    return Math.max(0, STREAM_HIGH_WATER_BYTES - (this.#controller.desiredSize ?? 0));
  }

  write(message: unknown): boolean {
    if (this.#finished) return false;
    const bytes = this.init.method.responseSerialize(message);
    this.#controller.enqueue(frame(0, bytes));
    const room = (this.#controller.desiredSize ?? 0) > 0;
    if (!room) this.#needDrain = true;
    return room;
  }

  /** True once the status was sent or the client left. */
  get finished(): boolean {
    return this.#finished;
  }

  /** The handler finished: status OK. */
  end(): void {
    this.#finish({ code: 0, message: "", metadata: [] });
  }

  /** grpc-js sends a status when "error" is emitted on a server stream; so does this call. */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === "error") {
      this.#finish(fromGrpcStatus(args[0] as Partial<grpc.StatusObject>));
      return this.listenerCount("error") > 0 ? super.emit(event, ...args) : true;
    }
    return super.emit(event, ...args);
  }

  pause(): void {
    this.#paused ??= Promise.withResolvers<void>();
  }

  resume(): void {
    this.#paused?.resolve();
    this.#paused = undefined;
  }

  /** Resolves while the handler has paused reading (request streams). */
  async readable(): Promise<void> {
    while (this.#paused) await this.#paused.promise;
  }

  /** The client went away or cancelled: handlers see `cancelled`, nothing more is sent. */
  clientGone(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.cancelled = true;
    this.resume();
    this.emit("cancelled");
    this.emit("finished");
  }

  /** A framing problem on the request stream. */
  refuse(error: FrameError | WireStatus): void {
    this.#finish("code" in error ? error : frameStatus(error));
    this.emit("cancelled");
  }

  #finish(status: WireStatus): void {
    if (this.#finished) return;
    this.#finished = true;
    this.resume();
    const protocol = this.init.protocol;
    try {
      this.#controller.enqueue(finalFrame(protocol, status));
      this.#controller.close();
    } catch {
      // The client already closed the response.
    }
    // Stop reading a request stream the client has not ended: the call is over.
    this.emit("finished");
  }
}

/** A frame's flags the server accepts from a client. */
export function frameProblem(flags: number): string | undefined {
  if (flags & FLAG_COMPRESSED) {
    return "a compressed message was sent, but this server accepts no message encoding";
  }
  if (flags !== 0) return `unknown frame flags 0x${flags.toString(16)}`;
  return undefined;
}
