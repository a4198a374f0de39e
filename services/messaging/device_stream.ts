/**
 * One Receive stream: the calling device's mailbox, sent in seq order, then live.
 *
 * - A single pump reads the mailbox after the last seq sent, in batches bounded by the room in
 *   the in-flight window (at most 500 unacknowledged envelopes), and writes with backpressure.
 *   Wake-ups, acks and the poll timer only mark the mailbox dirty and kick the pump, so reads of
 *   one stream never overlap and order is the mailbox's seq order.
 * - After the backlog present at open has been sent, one QueueDrained follows.
 * - Acks are queued and applied in batches (one store call per batch); only acknowledged
 *   envelopes of this device are deleted. Unacknowledged ones come again on the next stream.
 * - A poll timer (jittered, reset by every read) re-reads the mailbox so a lost wake-up delays
 *   delivery by at most one interval, and re-checks that the device is still active.
 * - The stream ends with Closed{reason} (then status OK) when replaced, revoked, at token
 *   expiry or shutdown; with an error status on a protocol violation or a backend failure.
 */

import type * as grpc from "@grpc/grpc-js";
import type { Bus, Subscription } from "../bus/port.ts";
import type { DeviceSignal } from "../bus/subjects.ts";
import { invalidArgument, resourceExhausted } from "../platform/errors.ts";
import type { Logger } from "../platform/log.ts";
import {
  type DeviceRef,
  MAILBOX_ACK_MAX,
  MAILBOX_READ_MAX,
  type MailboxStore,
} from "../store/ports.ts";
import {
  ClosedReason,
  Envelope,
  type ReceiveRequest,
  type ReceiveResponse,
} from "../../proto/gen/guardyn/v1/messaging.ts";
import type { MailboxEvents } from "../kit/mailbox_events.ts";
import { toEnvelope } from "../kit/envelopes.ts";
import { backendFailure } from "./store_errors.ts";
import { ACK_IDS_MAX, ackIdsProblem } from "./ack_rules.ts";

export { ACK_IDS_MAX };

export type ReceiveCall = grpc.ServerDuplexStream<ReceiveRequest, ReceiveResponse>;

/** The contract's bound on unacknowledged envelopes per stream. */
export const IN_FLIGHT_MAX = 500;
/** Acks queued before the client is cut off. */
const ACK_QUEUE_MAX = 10 * ACK_IDS_MAX;
/** Pings answered per stream: a burst, then one per second. */
const PING_BURST = 10;
const PING_PER_SECOND = 1;
/** Ephemeral envelopes are dropped rather than queued behind this much unsent output. */
const EPHEMERAL_DROP_BACKLOG = 64;

export interface DeviceStreamDeps {
  mailbox: MailboxStore;
  bus: Bus;
  events: MailboxEvents;
  log: Logger;
  /** False once the device was revoked or its account deleted. */
  deviceActive: (owner: DeviceRef) => Promise<boolean>;
  pollIntervalMs: number;
  now: () => number;
  onDelivered?: (count: number) => void;
}

export interface StreamIdentity {
  owner: DeviceRef;
  streamId: string;
  openedAtMs: number;
  /** When the access token the stream was opened with expires. */
  tokenExpiresAtMs?: number;
}

/** True when stream `a` opened after stream `b` (ties broken by id, so exactly one wins). */
export function opensAfter(
  a: { openedAtMs: number; streamId: string },
  b: { openedAtMs: number; streamId: string },
): boolean {
  return a.openedAtMs > b.openedAtMs || (a.openedAtMs === b.openedAtMs && a.streamId > b.streamId);
}

export class DeviceStream {
  readonly owner: DeviceRef;
  readonly streamId: string;
  readonly openedAtMs: number;
  readonly #tokenExpiresAtMs: number | undefined;
  readonly #done = Promise.withResolvers<void>();
  /** Highest seq written to the client. */
  #cursor = 0;
  readonly #inFlight = new Set<string>();
  #dirty = true;
  #pumping = false;
  #drained = false;
  #backlog = 0;
  #ackQueue: string[] = [];
  #acking = false;
  #closed = false;
  #subscriptions: Subscription[] = [];
  #pollTimer: ReturnType<typeof setTimeout> | undefined;
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;
  #writable: PromiseWithResolvers<void> | undefined;
  #pingTokens = PING_BURST;
  #pingAtMs = 0;
  /** Pongs held until the acks received before their ping are applied. */
  #pongsAfterAcks: number[] = [];

  constructor(
    private readonly call: ReceiveCall,
    private readonly deps: DeviceStreamDeps,
    identity: StreamIdentity,
  ) {
    this.owner = identity.owner;
    this.streamId = identity.streamId;
    this.openedAtMs = identity.openedAtMs;
    this.#tokenExpiresAtMs = identity.tokenExpiresAtMs;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Attaches to the call synchronously (so an abort is seen first), then subscribes to the
   * device's wake-ups and signals, announces itself to other instances and starts the pump.
   * Resolves when the stream is over; rejects with the status to end it with.
   */
  async run(signal: AbortSignal): Promise<void> {
    signal.addEventListener("abort", () => this.#aborted(signal.reason), { once: true });
    this.call.on("data", (request: ReceiveRequest) => this.#onRequest(request));
    this.call.on("end", () => this.#finish());
    this.call.on("error", () => this.#finish());
    this.call.on("drain", () => this.#writable?.resolve());
    try {
      await this.#start();
      await this.#done.promise;
    } finally {
      this.#teardown();
    }
  }

  /** Ends the stream with Closed{reason} and status OK. */
  close(reason: ClosedReason): void {
    if (this.#closed) return;
    this.#write({ event: { $case: "closed", value: { reason } } });
    this.#finish();
  }

  /**
   * An envelope this instance just wrote for the device: sent at once, without reading the
   * mailbox, when it is exactly the next one in seq order and nothing else is going on.
   * False means "not taken": the caller wakes the stream instead, which reads the mailbox.
   */
  offer(envelope: Envelope): boolean {
    if (
      this.#closed || this.#pumping || this.#dirty || !this.#drained ||
      envelope.seq !== this.#cursor + 1 || this.#inFlight.size >= IN_FLIGHT_MAX ||
      this.call.writableLength > 0
    ) {
      return false;
    }
    this.#inFlight.add(envelope.id);
    this.#cursor = envelope.seq;
    this.#write({ event: { $case: "envelope", value: envelope } });
    this.deps.onDelivered?.(1);
    return true;
  }

  /** Mailbox changed (a wake-up): read it again. */
  wake(): void {
    this.#dirty = true;
    void this.#pump();
  }

  /** A signal for this device from any instance. */
  onSignal(signal: DeviceSignal): void {
    switch (signal.kind) {
      case "stream.opened":
        if (signal.streamId !== this.streamId && opensAfter(signal, this)) {
          this.close(ClosedReason.CLOSED_REASON_REPLACED);
        }
        return;
      case "device.revoked":
        if (this.openedAtMs <= signal.atMs) this.close(ClosedReason.CLOSED_REASON_DEVICE_REVOKED);
        return;
      case "payload":
        this.#onPayload(signal.data);
        return;
      case "acked":
        // Acknowledge calls served by another instance: deleted there, room freed here.
        this.released(signal.envelopeIds);
        return;
    }
  }

  async #start(): Promise<void> {
    const { bus, log } = this.deps;
    const { accountId, deviceId } = this.owner;
    const subscriptions = await Promise.all([
      bus.onWake(accountId, deviceId, () => this.wake()),
      bus.onSignal(accountId, deviceId, (signal) => this.onSignal(signal)),
    ]);
    if (this.#closed) {
      for (const subscription of subscriptions) void subscription.unsubscribe();
      return;
    }
    this.#subscriptions = subscriptions;
    // Streams of this device on other instances close when they hear this.
    await bus.signal(accountId, deviceId, {
      kind: "stream.opened",
      streamId: this.streamId,
      openedAtMs: this.openedAtMs,
    }).catch((error) => log.warn("stream takeover signal not sent", { error }));
    if (this.#tokenExpiresAtMs !== undefined) {
      const ms = Math.max(0, this.#tokenExpiresAtMs - this.deps.now());
      // Timers are capped at 2^31-1 ms; tokens live minutes, so the cap never shortens one.
      this.#expiryTimer = setTimeout(
        () => this.close(ClosedReason.CLOSED_REASON_TOKEN_EXPIRED),
        Math.min(ms, 2 ** 31 - 1),
      );
    }
    void this.#pump();
  }

  #onRequest(request: ReceiveRequest): void {
    if (this.#closed) return;
    const kind = request.kind;
    if (kind?.$case === "ack") {
      this.#onAck(kind.value.envelopeIds);
    } else if (kind?.$case === "ping") {
      this.#onPing(kind.value.nonce);
    } else {
      this.#fail(invalidArgument("a ReceiveRequest must hold an ack or a ping"));
    }
  }

  #onAck(ids: string[]): void {
    const problem = ackIdsProblem(ids);
    if (problem) return this.#fail(invalidArgument(problem));
    if (this.#ackQueue.length + ids.length > ACK_QUEUE_MAX) {
      return this.#fail(
        resourceExhausted(`more than ${ACK_QUEUE_MAX} acknowledgements are waiting; slow down`),
      );
    }
    for (const id of ids) this.#ackQueue.push(id);
    void this.#flushAcks();
  }

  /**
   * Acknowledged envelopes (here, by an Acknowledge call, or on another instance) leave the
   * in-flight window; a full window sends again.
   */
  released(ids: readonly string[]): void {
    const windowWasFull = this.#inFlight.size >= IN_FLIGHT_MAX;
    for (const id of ids) this.#inFlight.delete(id);
    if (windowWasFull && !this.#closed) void this.#pump();
  }

  /** Applies queued acks in batches; runs on even after the stream closed, so none is lost. */
  async #flushAcks(): Promise<void> {
    if (this.#acking) return;
    this.#acking = true;
    try {
      while (this.#ackQueue.length > 0) {
        const ids = this.#ackQueue.length <= MAILBOX_ACK_MAX
          ? this.#ackQueue
          : this.#ackQueue.slice(0, MAILBOX_ACK_MAX);
        this.#ackQueue = this.#ackQueue.length <= MAILBOX_ACK_MAX
          ? []
          : this.#ackQueue.slice(MAILBOX_ACK_MAX);
        const deleted = await this.deps.mailbox.ack(this.owner, ids);
        this.released(ids);
        if (deleted > 0) this.deps.events.acked(this.owner, deleted);
      }
      for (const nonce of this.#pongsAfterAcks.splice(0)) this.#pong(nonce);
    } catch (error) {
      this.#fail(backendFailure(error));
    } finally {
      this.#acking = false;
    }
  }

  #onPing(nonce: number): void {
    const now = this.deps.now();
    this.#pingTokens = Math.min(
      PING_BURST,
      this.#pingTokens + ((now - this.#pingAtMs) / 1000) * PING_PER_SECOND,
    );
    this.#pingAtMs = now;
    if (this.#pingTokens < 1) {
      return this.#fail(resourceExhausted("pings are limited to one per second", "RATE_LIMITED"));
    }
    this.#pingTokens -= 1;
    // A Pong confirms that every ack sent before its Ping is applied: clients can use a ping
    // as a barrier before closing.
    if (this.#acking || this.#ackQueue.length > 0) this.#pongsAfterAcks.push(nonce);
    else this.#pong(nonce);
  }

  #pong(nonce: number): void {
    this.#write({ event: { $case: "pong", value: { nonce, serverTimeMs: this.deps.now() } } });
  }

  async #pump(): Promise<void> {
    if (this.#pumping || this.#closed) return;
    this.#pumping = true;
    try {
      while (!this.#closed && this.#dirty) {
        const room = IN_FLIGHT_MAX - this.#inFlight.size;
        if (room <= 0) break; // an ack makes room and kicks the pump again
        this.#dirty = false;
        const limit = Math.min(room, MAILBOX_READ_MAX);
        const batch = await this.deps.mailbox.read(
          this.owner,
          this.#cursor,
          limit,
          this.deps.now(),
        );
        for (const envelope of batch) {
          if (this.#closed) return;
          this.#inFlight.add(envelope.id);
          this.#cursor = envelope.seq;
          await this.#send({ event: { $case: "envelope", value: toEnvelope(envelope) } });
        }
        if (batch.length > 0) this.deps.onDelivered?.(batch.length);
        if (batch.length === limit) {
          this.#dirty = true; // maybe more
        }
        if (!this.#drained) {
          this.#backlog += batch.length;
          if (batch.length < limit) {
            this.#drained = true;
            this.#write({
              event: { $case: "queueDrained", value: { backlogCount: this.#backlog } },
            });
          }
        }
      }
    } catch (error) {
      this.#fail(backendFailure(error));
    } finally {
      this.#pumping = false;
      this.#armPoll();
    }
  }

  /** The next mailbox re-check, jittered ±20% so many streams do not poll in step. */
  #armPoll(): void {
    clearTimeout(this.#pollTimer);
    if (this.#closed) return;
    const interval = this.deps.pollIntervalMs * (0.8 + Math.random() * 0.4);
    this.#pollTimer = setTimeout(() => void this.#poll(), interval);
  }

  async #poll(): Promise<void> {
    try {
      if (!await this.deps.deviceActive(this.owner)) {
        return this.close(ClosedReason.CLOSED_REASON_DEVICE_REVOKED);
      }
    } catch (error) {
      this.deps.log.warn("device status check failed", { error });
    }
    this.wake();
  }

  /**
   * An envelope from another instance: an ephemeral one (typing) goes out as it is, if the
   * stream keeps up; a stored one is offered, and otherwise read from the mailbox.
   */
  #onPayload(data: Uint8Array): void {
    if (this.#closed) return;
    let envelope: Envelope;
    try {
      envelope = Envelope.decode(data);
    } catch (error) {
      this.deps.log.warn("malformed envelope payload dropped", { error });
      return;
    }
    if (!envelope.ephemeral) {
      if (!this.offer(envelope)) this.wake();
      return;
    }
    if (this.call.writableLength > EPHEMERAL_DROP_BACKLOG) return;
    this.#write({ event: { $case: "envelope", value: { ...envelope, seq: 0 } } });
  }

  /** Writes and waits while the transport buffer is full. */
  async #send(message: ReceiveResponse): Promise<void> {
    if (this.#write(message)) return;
    this.#writable = Promise.withResolvers<void>();
    await this.#writable.promise;
    this.#writable = undefined;
  }

  #write(message: ReceiveResponse): boolean {
    if (this.#closed) return true;
    try {
      return this.call.write(message);
    } catch (error) {
      this.deps.log.debug("write on a closing stream", { error });
      this.#finish();
      return true;
    }
  }

  #aborted(reason: unknown): void {
    // Shutdown cancels streams: tell the client why before the status arrives.
    const shuttingDown = (reason as { reason?: unknown } | null)?.reason === "SHUTTING_DOWN";
    if (shuttingDown) this.close(ClosedReason.CLOSED_REASON_SHUTTING_DOWN);
    else this.#finish();
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#writable?.resolve();
    this.#done.resolve();
  }

  #fail(error: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#writable?.resolve();
    this.#done.reject(error);
  }

  #teardown(): void {
    this.#closed = true;
    clearTimeout(this.#pollTimer);
    clearTimeout(this.#expiryTimer);
    for (const subscription of this.#subscriptions) {
      subscription.unsubscribe().catch((error) =>
        this.deps.log.warn("bus unsubscribe failed", { error })
      );
    }
    this.#subscriptions = [];
  }
}
