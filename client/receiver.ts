/**
 * The device's Receive stream, kept open: reconnects with jittered backoff, renews the token
 * when the server closes the stream at token expiry, pings an idle stream to notice a dead
 * connection, and acknowledges envelopes only after `process` has durably handled them.
 * Ends for good when another stream of the device takes over or the device is revoked.
 */

import * as grpc from "@grpc/grpc-js";
import {
  ClosedReason,
  type Envelope,
  type ReceiveResponse,
} from "../proto/gen/guardyn/v1/messaging.ts";
import { Backoff, type BackoffOptions, DEFAULT_BACKOFF, sleep } from "./backoff.ts";
import { fromServiceError, GuardynClientError } from "./errors.ts";
import type { TokenKeeper } from "./tokens.ts";
import type { ReceiveCall, Transport } from "./transport.ts";

export type ConnectionState = "connecting" | "online" | "offline" | "stopped";
export type EndReason = "replaced" | "revoked" | "login-required";

export interface ReceiverDeps {
  transport: Transport;
  tokens: TokenKeeper;
  /** Handles a batch in order; returns the ids to acknowledge (all of it, once durable). */
  process(envelopes: Envelope[]): Promise<string[]>;
  onState(state: ConnectionState, error?: GuardynClientError): void;
  /** The backlog present at connect has been handled (after every reconnect). */
  onDrained(): void;
  /** The stream will not come back by itself. */
  onEnd(reason: EndReason): void;
  /** A batch failed; it will come again after a reconnect. */
  onError(error: unknown): void;
  backoff?: BackoffOptions;
  pingIntervalMs?: number;
}

/** The contract's bound on ids per Ack. */
const ACK_MAX = 500;
const PING_TIMEOUT_MS = 20_000;
const DEFAULT_PING_INTERVAL_MS = 30_000;
/** How long stop() waits for the server to end a half-closed stream before resetting it. */
const STOP_GRACE_MS = 2_000;

type StreamEnd =
  | { kind: "closed"; reason: ClosedReason }
  | { kind: "failed"; error: GuardynClientError }
  | { kind: "ended" };

export class Receiver {
  #running = false;
  #loop: Promise<void> | undefined;
  #call: ReceiveCall | undefined;
  #queue: Envelope[] = [];
  #worker: Promise<void> | undefined;
  #nonce = 0;
  readonly #pongs = new Map<number, () => void>();
  readonly #backoff: Backoff;
  #drained = false;
  #stopSignal = new AbortController();

  constructor(private readonly deps: ReceiverDeps) {
    this.#backoff = new Backoff(deps.backoff ?? DEFAULT_BACKOFF);
  }

  get running(): boolean {
    return this.#running;
  }

  /** True once the backlog of the current stream has been handled. */
  get drained(): boolean {
    return this.#drained;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#stopSignal = new AbortController();
    this.#loop = this.#run().finally(() => {
      this.#running = false;
      this.deps.onState("stopped");
    });
  }

  /**
   * Stops cleanly: handles what arrived, acknowledges it, waits until the server applied the
   * acks (a ping round trip), then half-closes the stream so the server ends it (a reset only
   * if it does not within a moment).
   */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    await this.#worker;
    await this.#barrier(2_000).catch(() => {});
    this.#stopSignal.abort(new GuardynClientError("CLOSED", "stopped"));
    const call = this.#call;
    try {
      call?.end();
    } catch {
      // already closed
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ended = await Promise.race([
      this.#loop?.then(() => true),
      new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), STOP_GRACE_MS)),
    ]);
    clearTimeout(timer);
    if (!ended) call?.cancel();
    await this.#loop;
  }

  /** Resolves when everything delivered so far is handled and acknowledged at the server. */
  async flush(timeoutMs = 10_000): Promise<void> {
    await this.#worker;
    await this.#barrier(timeoutMs);
    await this.#worker;
  }

  async #run(): Promise<void> {
    while (this.#running) {
      let token: string;
      try {
        token = await this.deps.tokens.accessToken();
      } catch (error) {
        if (this.#terminal(error)) return;
        this.deps.onState("offline", asClientError(error));
        await this.#pause(this.#backoff.next());
        continue;
      }
      this.deps.onState("connecting");
      const end = await this.#stream(token);
      if (!this.#running) return;
      if (end.kind === "closed") {
        switch (end.reason) {
          case ClosedReason.CLOSED_REASON_REPLACED:
            this.deps.onEnd("replaced");
            return;
          case ClosedReason.CLOSED_REASON_DEVICE_REVOKED:
            this.deps.onEnd("revoked");
            return;
          case ClosedReason.CLOSED_REASON_TOKEN_EXPIRED:
            await this.deps.tokens.renew(token).catch(() => {});
            continue;
          default:
            this.deps.onState("offline");
            await this.#pause(this.#backoff.next());
            continue;
        }
      }
      if (end.kind === "failed") {
        if (this.#terminal(end.error)) return;
        if (end.error.code === "TOKEN_EXPIRED") {
          await this.deps.tokens.renew(token).catch(() => {});
          await this.#pause(this.#backoff.next());
          continue;
        }
        this.deps.onState("offline", end.error);
      } else {
        this.deps.onState("offline");
      }
      await this.#pause(this.#backoff.next());
    }
  }

  #terminal(error: unknown): boolean {
    const code = (error as GuardynClientError | undefined)?.code;
    if (code === "DEVICE_REVOKED") {
      this.deps.onEnd("revoked");
      return true;
    }
    if (code === "LOGIN_REQUIRED" || code === "NOT_SIGNED_IN") {
      this.deps.onEnd("login-required");
      return true;
    }
    return false;
  }

  async #pause(ms: number): Promise<void> {
    await sleep(ms, this.#stopSignal.signal).catch(() => {});
  }

  #stream(token: string): Promise<StreamEnd> {
    this.#drained = false;
    const call = this.deps.transport.receive(token);
    this.#call = call;
    let closedReason: ClosedReason | undefined;
    let pingTimer: ReturnType<typeof setInterval> | undefined;
    return new Promise<StreamEnd>((resolve) => {
      call.on("data", (response: ReceiveResponse) => {
        const event = response.event;
        switch (event?.$case) {
          case "envelope":
            this.#queue.push(event.value);
            this.#kick();
            break;
          case "queueDrained":
            this.#backoff.reset();
            void this.#afterWorker(() => {
              this.#drained = true;
              this.deps.onState("online");
              this.deps.onDrained();
            });
            break;
          case "pong":
            this.#pongs.get(event.value.nonce)?.();
            this.#pongs.delete(event.value.nonce);
            break;
          case "closed":
            closedReason = event.value.reason;
            break;
        }
      });
      // Failures also arrive as the status; listening keeps them from being thrown.
      call.on("error", () => {});
      call.on("status", (status: grpc.StatusObject) => {
        clearInterval(pingTimer);
        if (this.#call === call) this.#call = undefined;
        for (const resolvePong of this.#pongs.values()) resolvePong();
        this.#pongs.clear();
        if (closedReason !== undefined) resolve({ kind: "closed", reason: closedReason });
        else if (status.code === grpc.status.OK) resolve({ kind: "ended" });
        else {resolve({
            kind: "failed",
            error: fromServiceError({ ...status, name: "", message: status.details }),
          });}
      });
      pingTimer = setInterval(() => {
        this.#barrier(PING_TIMEOUT_MS).catch(() => call.cancel());
      }, this.deps.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS);
    });
  }

  /** Handles queued envelopes one batch at a time and acknowledges each batch. */
  #kick(): void {
    this.#worker ??= (async () => {
      try {
        while (this.#queue.length > 0) {
          const batch = this.#queue.splice(0, ACK_MAX);
          let ids: string[];
          try {
            ids = await this.deps.process(batch);
          } catch (error) {
            // Not acknowledged: the server sends the batch again on the next stream.
            this.deps.onError(error);
            this.#call?.cancel();
            this.#queue = [];
            return;
          }
          for (let i = 0; i < ids.length; i += ACK_MAX) {
            this.#write({
              kind: { $case: "ack", value: { envelopeIds: ids.slice(i, i + ACK_MAX) } },
            });
          }
        }
      } finally {
        this.#worker = undefined;
      }
    })();
  }

  async #afterWorker(action: () => void): Promise<void> {
    while (this.#worker) await this.#worker;
    action();
  }

  /** A ping round trip: the server answers after applying every ack sent before it. */
  #barrier(timeoutMs: number): Promise<void> {
    const call = this.#call;
    if (!call) return Promise.resolve();
    const nonce = ++this.#nonce;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pongs.delete(nonce);
        reject(new GuardynClientError("DEADLINE_EXCEEDED", "no pong from the server"));
      }, timeoutMs);
      this.#pongs.set(nonce, () => {
        clearTimeout(timer);
        resolve();
      });
      this.#write({ kind: { $case: "ping", value: { nonce } } });
    });
  }

  #write(request: Parameters<ReceiveCall["write"]>[0]): void {
    try {
      this.#call?.write(request);
    } catch {
      // The stream is closing; unacknowledged envelopes come again on the next one.
    }
  }
}

function asClientError(error: unknown): GuardynClientError {
  return error instanceof GuardynClientError ? error : fromServiceError(error);
}
