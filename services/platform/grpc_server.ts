/**
 * The gRPC server kit every Guardyn service runs on: standard `grpc.health.v1`, authentication
 * on every non-public call, request size and deadline limits, one error mapping, request ids,
 * metrics and access logs, and a graceful shutdown that stops accepting, drains, then cancels.
 *
 * Services register plain async handlers that receive a `CallContext`; the kit does the rest.
 */

import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { type AuthContext, type Authenticator, bearerToken } from "./auth.ts";
import type { GrpcLimits } from "./config.ts";
import { GuardynError, invalidArgument, toStatus } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { type Cidr, clientAddressOf } from "./client_address.ts";

export interface CallContext {
  /** Present on every non-public method: the kit rejects the call before the handler otherwise. */
  auth: AuthContext | undefined;
  requestId: string;
  log: Logger;
  metadata: grpc.Metadata;
  /** Aborted when the client cancels, the deadline passes or the server shuts down. */
  signal: AbortSignal;
  /** The TCP peer ("ipv4:1.2.3.4:5678"): the ingress, behind a proxy. */
  peer: string;
  /** The client's address for per-address limits (client_address.ts: trusted proxies). */
  readonly clientAddress: string;
}

/** An authenticated context; handlers of non-public methods call `requireAuth(ctx)`. */
export function requireAuth(ctx: CallContext): AuthContext {
  if (!ctx.auth) {
    throw new GuardynError(grpc.status.UNAUTHENTICATED, "TOKEN_MISSING", "not authenticated");
  }
  return ctx.auth;
}

// Inferred from the deserializers: their return types are exactly the message types.
type Req<M> = M extends { requestDeserialize: (...args: never[]) => infer I } ? I : never;
type Res<M> = M extends { responseDeserialize: (...args: never[]) => infer O } ? O : never;

/** The handler shape for one method, chosen by its streaming flags. */
export type Handler<M> = M extends { requestStream: true; responseStream: true }
  ? (call: grpc.ServerDuplexStream<Req<M>, Res<M>>, ctx: CallContext) => Promise<void>
  : M extends { requestStream: true }
    ? (call: grpc.ServerReadableStream<Req<M>, Res<M>>, ctx: CallContext) => Promise<Res<M>>
  : M extends { responseStream: true } ? (
      request: Req<M>,
      call: grpc.ServerWritableStream<Req<M>, Res<M>>,
      ctx: CallContext,
    ) => Promise<void>
  : (request: Req<M>, ctx: CallContext) => Promise<Res<M>>;

export type Handlers<D extends grpc.ServiceDefinition> = { [K in keyof D]: Handler<D[K]> };

export interface ServiceOptions {
  /** Method names (keys of the definition) callable without a token: login, register, ... */
  publicMethods?: readonly string[];
}

/**
 * One served method as every listener sees it: the definition (its request deserializer never
 * throws; it returns a MalformedRequest) and the wrapped implementation, which runs auth,
 * limits, deadlines, metrics and the error mapping around the service's handler. The native
 * gRPC listener and the gRPC-Web/Connect listener (web_server.ts) call the same one.
 */
export interface Route {
  method: grpc.MethodDefinition<unknown, unknown>;
  implementation: grpc.UntypedHandleCall;
}

export interface GrpcServerOptions {
  host: string;
  port: number;
  limits: GrpcLimits;
  log: Logger;
  metrics: Metrics;
  authenticator: Authenticator;
  /** Proxies whose x-forwarded-for is believed (TRUSTED_PROXY_CIDRS); none by default. */
  trustedProxies?: readonly Cidr[];
}

/** Abort reason when the client cancels: not a server failure. */
class ClientCancelled extends Error {
  constructor() {
    super("cancelled by client");
    this.name = "ClientCancelled";
  }
}

type AnyCall =
  | grpc.ServerUnaryCall<unknown, unknown>
  | grpc.ServerReadableStream<unknown, unknown>
  | grpc.ServerWritableStream<unknown, unknown>;

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** The client's request id when it is well-formed, else a fresh one. */
export function requestIdOf(incoming: unknown): string {
  return typeof incoming === "string" && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
}

export class GrpcServer {
  readonly #server: grpc.Server;
  readonly #health: HealthImplementation;
  readonly #services: string[] = [];
  readonly #routes = new Map<string, Route>();
  readonly #openCalls = new Set<AbortController>();
  #draining = false;
  #port = 0;

  constructor(private readonly options: GrpcServerOptions) {
    this.#server = new grpc.Server({
      "grpc.max_receive_message_length": options.limits.maxRequestBytes,
      "grpc.max_send_message_length": options.limits.maxResponseBytes,
      "grpc.max_concurrent_streams": options.limits.maxConcurrentStreams,
      "grpc.keepalive_time_ms": 60_000,
      "grpc.keepalive_timeout_ms": 20_000,
      "grpc.keepalive_permit_without_calls": 1,
      "grpc-node.max_session_memory": 64,
      // Channelz (per-call bookkeeping for a debug service Guardyn does not expose) costs
      // about 3% of a busy instance's CPU; /metrics carries what operators need.
      "grpc.enable_channelz": 0,
    });
    this.#health = new HealthImplementation({ "": "NOT_SERVING" });
    this.#health.addToServer(this.#server);
    // The same health service for the other listeners: a server-shaped shim records its routes.
    const recordRoutes = {
      addService: (
        definition: grpc.ServiceDefinition,
        implementation: grpc.UntypedServiceImplementation,
      ) => {
        for (const [name, method] of Object.entries(definition)) {
          // Generated definitions name methods "Check" (with originalName "check").
          const handler = implementation[name] ??
            implementation[(method as { originalName?: string }).originalName ?? ""];
          if (!handler) continue;
          this.#routes.set(method.path, {
            method: tolerantDeserializer(method),
            implementation: handler,
          });
        }
      },
    };
    this.#health.addToServer(recordRoutes as unknown as grpc.Server);
  }

  /** The request limits every listener applies. */
  get limits(): GrpcLimits {
    return this.options.limits;
  }

  /** Every served method by its path ("/guardyn.v1.AuthService/Login"). */
  get routes(): ReadonlyMap<string, Route> {
    return this.#routes;
  }

  /** True once shutdown began: listeners refuse new calls. */
  get draining(): boolean {
    return this.#draining;
  }

  get port(): number {
    return this.#port;
  }

  /** Fully qualified names of the services registered so far. */
  get services(): readonly string[] {
    return this.#services;
  }

  /** Registers a service; `serviceName` is its fully qualified name for health checks. */
  addService<D extends grpc.ServiceDefinition>(
    serviceName: string,
    definition: D,
    handlers: Handlers<D>,
    options: ServiceOptions = {},
  ): void {
    const publicMethods = new Set(options.publicMethods ?? []);
    const implementation: grpc.UntypedServiceImplementation = {};
    const served: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    for (const [name, method] of Object.entries(definition)) {
      served[name] = tolerantDeserializer(method);
      const handler = (handlers as Record<string, unknown>)[name];
      if (typeof handler !== "function") throw new Error(`${serviceName}.${name} has no handler`);
      implementation[name] = this.#wrap(
        serviceName,
        name,
        method,
        handler as (...args: unknown[]) => Promise<unknown>,
        publicMethods.has(name),
      );
      this.#routes.set(method.path, { method: served[name], implementation: implementation[name] });
    }
    this.#server.addService(served, implementation);
    this.#services.push(serviceName);
    this.#health.setStatus(serviceName, "NOT_SERVING");
  }

  async start(): Promise<number> {
    const address = `${this.options.host}:${this.options.port}`;
    this.#port = await new Promise<number>((resolve, reject) => {
      this.#server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, port) => {
        if (error) reject(new Error(`cannot listen for gRPC on ${address}: ${error.message}`));
        else resolve(port);
      });
    });
    this.#health.setStatus("", "SERVING");
    for (const service of this.#services) this.#health.setStatus(service, "SERVING");
    return this.#port;
  }

  /** Health answers SERVING without a native listener in this process (the other listeners). */
  markServing(): void {
    this.#health.setStatus("", "SERVING");
    for (const service of this.#services) this.#health.setStatus(service, "SERVING");
  }

  /**
   * Stops accepting calls, reports NOT_SERVING, waits up to `graceMs` for open calls to
   * finish, then cancels the rest (their handlers see `signal` aborted).
   */
  async shutdown(graceMs: number): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    this.#health.setStatus("", "NOT_SERVING");
    for (const service of this.#services) this.#health.setStatus(service, "NOT_SERVING");
    const drained = new Promise<void>((resolve) => this.#server.tryShutdown(() => resolve()));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), graceMs);
    });
    // Long-lived streams never end by themselves: cancel them now so clients reconnect elsewhere.
    for (const controller of this.#openCalls) {
      if ((controller as AbortController & { stream?: boolean }).stream) {
        controller.abort(
          new GuardynError(grpc.status.UNAVAILABLE, "SHUTTING_DOWN", "server is shutting down"),
        );
      }
    }
    const outcome = await Promise.race([drained, timedOut]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      for (const controller of this.#openCalls) {
        controller.abort(new Error("shutdown grace elapsed"));
      }
      this.#server.forceShutdown();
    }
  }

  #wrap(
    serviceName: string,
    methodName: string,
    method: grpc.MethodDefinition<unknown, unknown>,
    handler: (...args: unknown[]) => Promise<unknown>,
    isPublic: boolean,
  ) {
    const { log, metrics, authenticator, limits } = this.options;
    const trustedProxies = this.options.trustedProxies ?? [];
    const labels = { service: serviceName, method: methodName };
    const isStream = method.requestStream || method.responseStream;

    const begin = async (call: AnyCall) => {
      const requestId = requestIdOf(call.metadata.get("x-request-id")[0]);
      const controller = new AbortController() as AbortController & { stream?: boolean };
      controller.stream = isStream;
      this.#openCalls.add(controller);
      (call as grpc.ServerUnaryCall<unknown, unknown>).on(
        "cancelled",
        () => controller.abort(new ClientCancelled()),
      );
      if (isStream) {
        // Streams announce their request id up front; unary calls carry it on errors only
        // (an early header frame per unary call cost ~6% of server CPU).
        const header = new grpc.Metadata();
        header.set("x-request-id", requestId);
        call.sendMetadata(header);
      }
      const ctx: CallContext = {
        auth: undefined,
        requestId,
        log: log.child({ requestId, rpc: `${serviceName}/${methodName}` }),
        metadata: call.metadata,
        signal: controller.signal,
        peer: call.getPeer(),
        // Computed when a handler asks: most calls never need it.
        get clientAddress() {
          const forwarded = call.metadata.get("x-forwarded-for").join(",");
          return clientAddressOf(this.peer, forwarded || undefined, trustedProxies);
        },
      };
      if (this.#draining) {
        throw new GuardynError(grpc.status.UNAVAILABLE, "SHUTTING_DOWN", "server is shutting down");
      }
      if (!isPublic) ctx.auth = await authenticator.verify(bearerToken(call.metadata));
      return { ctx, controller };
    };

    const finish = (
      ctx: CallContext | undefined,
      controller: AbortController | undefined,
      started: number,
      error: unknown,
    ): Partial<grpc.StatusObject> | undefined => {
      if (controller) this.#openCalls.delete(controller);
      metrics.grpcInFlight.dec(labels);
      metrics.grpcDuration.observe(labels, (performance.now() - started) / 1000);
      const callLog = ctx?.log ?? log.child({ rpc: `${serviceName}/${methodName}` });
      if (error === undefined) {
        metrics.grpcHandled.inc({ ...labels, code: "OK" });
        return undefined;
      }
      const abortReason = controller?.signal.aborted ? controller.signal.reason : undefined;
      if (abortReason instanceof ClientCancelled) {
        // The client went away (closed its stream, timed out): normal, and nobody to answer.
        metrics.grpcHandled.inc({ ...labels, code: "CANCELLED" });
        callLog.debug("call cancelled by the client");
        return { code: grpc.status.CANCELLED, details: "cancelled by the client" };
      }
      const cause = abortReason instanceof GuardynError ? abortReason : error;
      const { status, internal } = toStatus(cause, ctx?.requestId ?? "none");
      if (ctx) status.metadata?.set("x-request-id", ctx.requestId);
      metrics.grpcHandled.inc({ ...labels, code: grpc.status[status.code ?? 2] ?? "UNKNOWN" });
      if (internal) {
        callLog.error("call failed", { error: cause });
      } else {
        callLog.debug("call refused", {
          code: status.code,
          reason: (cause as GuardynError).reason,
        });
      }
      return status;
    };

    /** Begins the call, runs `work`, records the outcome: the value, or the status to send. */
    const run = async <T>(
      call: AnyCall,
      work: (ctx: CallContext, controller: AbortController) => Promise<T>,
    ): Promise<
      { ok: true; value: T } | { ok: false; status: Partial<grpc.StatusObject> | null }
    > => {
      const started = performance.now();
      metrics.grpcInFlight.inc(labels);
      let ctx: CallContext | undefined;
      let controller: AbortController | undefined;
      try {
        ({ ctx, controller } = await begin(call));
        const value = await work(ctx, controller);
        finish(ctx, controller, started, undefined);
        return { ok: true, value };
      } catch (error) {
        return { ok: false, status: finish(ctx, controller, started, error) ?? null };
      }
    };

    if (!isStream) {
      return async (
        call: grpc.ServerUnaryCall<unknown, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        const outcome = await run(call, (ctx, controller) => {
          const deadlineMs = Math.min(remainingMs(call.getDeadline()), limits.maxUnaryDeadlineMs);
          return withDeadline(handler(wellFormed(call.request), ctx), deadlineMs, controller);
        });
        if (outcome.ok) callback(null, outcome.value);
        else callback(outcome.status);
      };
    }

    if (method.requestStream && !method.responseStream) {
      return async (
        call: grpc.ServerReadableStream<unknown, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        const outcome = await run(call, (ctx, controller) => {
          refuseMalformedMessages(call, controller);
          return raceAbort(handler(call, ctx), controller.signal);
        });
        if (outcome.ok) callback(null, outcome.value);
        else callback(outcome.status);
      };
    }

    return async (call: grpc.ServerWritableStream<unknown, unknown>) => {
      const outcome = await run(call, (ctx, controller) => {
        if (method.requestStream) refuseMalformedMessages(call, controller);
        const work = method.requestStream
          ? handler(call, ctx)
          : handler(wellFormed(call.request), call, ctx);
        return raceAbort(work, controller.signal);
      });
      if (outcome.ok) call.end();
      else call.emit("error", outcome.status);
    };
  }
}

/** A request body that is not the method's protobuf message, with the refusal to send. */
export class MalformedRequest {
  constructor(readonly refusal: GuardynError) {}
}

/**
 * grpc-js answers a body its deserializer rejects with INTERNAL; Guardyn answers bad input with
 * INVALID_ARGUMENT. The deserializer returns a MalformedRequest instead of throwing: for a
 * single-message request `wellFormed` turns it into that refusal inside the call; on a request
 * stream `refuseMalformedMessages` ends the call with it before any handler sees the message.
 */
function tolerantDeserializer(method: grpc.MethodDefinition<unknown, unknown>) {
  return {
    ...method,
    requestDeserialize: (bytes: Buffer) => {
      try {
        return method.requestDeserialize(bytes);
      } catch {
        return new MalformedRequest(
          invalidArgument(`a request message is not a valid protobuf message for ${method.path}`),
        );
      }
    },
  };
}

function refuseMalformedMessages(
  call: { emit(event: string | symbol, ...args: unknown[]): boolean },
  controller: AbortController,
): void {
  const emit = call.emit.bind(call);
  call.emit = (event, ...args) => {
    const message = args[0];
    if (event === "data" && message instanceof MalformedRequest) {
      controller.abort(message.refusal);
      return true;
    }
    return emit(event, ...args);
  };
}

function wellFormed(request: unknown): unknown {
  if (request instanceof MalformedRequest) throw request.refusal;
  return request;
}

function remainingMs(deadline: grpc.Deadline): number {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  if (!Number.isFinite(at) || at <= 0) return Number.POSITIVE_INFINITY;
  return Math.max(0, at - Date.now());
}

/**
 * `work`, or DEADLINE_EXCEEDED after `ms` (aborting `controller`, when given, so the handler
 * stops). Also bounds each send on a stream (services/messaging/send_stream.ts).
 */
export async function withDeadline<T>(
  work: Promise<T>,
  ms: number,
  controller?: AbortController,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new GuardynError(
        grpc.status.DEADLINE_EXCEEDED,
        "DEADLINE_EXCEEDED",
        `call exceeded its deadline of ${Math.round(ms)} ms`,
      );
      reject(error);
      controller?.abort(error);
    }, ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Rejects as soon as `signal` aborts, so a stuck handler cannot hold a call open. */
function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
