/**
 * Event bus port. The store is the truth and the bus is a hint: losing a bus message may delay
 * delivery but never loses data. Two kinds of traffic:
 * - wake-ups: ephemeral fan-out to every instance (core pub/sub), no persistence;
 * - device signals: the same fan-out with a small typed body (stream takeover, revocation,
 *   ephemeral payloads), at most once, never stored;
 * - broadcasts: fan-out of small bodies to every instance listening on a topic (presence),
 *   kept a few minutes so a briefly disconnected instance catches up, never replayed to
 *   listeners that start later;
 * - events: durable (JetStream), consumed by named durable consumers that share work
 *   across instances and are redelivered until acknowledged.
 */

import type { BroadcastTopic, BusEvent, DeviceSignal, EventKind } from "./subjects.ts";

export interface Subscription {
  unsubscribe(): Promise<void>;
}

export interface EventDelivery {
  event: BusEvent;
  /** How many times this event was delivered to this consumer (1 on first delivery). */
  deliveryCount: number;
}

/** Per-consumer overrides of the bus's delivery policy. */
export interface ConsumeOptions {
  /**
   * Handlers running at once per subscription (1..1000); for handlers that mostly wait, such
   * as the push dispatcher's grace period.
   */
  concurrency?: number;
}

export interface Bus {
  readonly info: { backend: "memory" | "nats"; location: string };
  /** Ephemeral wake-up for a device: every instance subscribed to it receives it, or nobody. */
  wake(accountId: string, deviceId: string): Promise<void>;
  /** Receive wake-ups for one device until unsubscribed. */
  onWake(accountId: string, deviceId: string, handler: () => void): Promise<Subscription>;
  /**
   * Ephemeral signal for a device: every instance subscribed to it receives it (decoded), or
   * nobody; never stored. Rejects a malformed signal (see encodeSignal).
   */
  signal(accountId: string, deviceId: string, signal: DeviceSignal): Promise<void>;
  /** Receive signals for one device until unsubscribed. */
  onSignal(
    accountId: string,
    deviceId: string,
    handler: (signal: DeviceSignal) => void,
  ): Promise<Subscription>;
  /** Fan-out to every instance listening on the topic now (see the file comment). */
  broadcast(topic: BroadcastTopic, data: Uint8Array): Promise<void>;
  /** Receive the topic's broadcasts published from now on, in publish order per publisher. */
  onBroadcast(topic: BroadcastTopic, handler: (data: Uint8Array) => void): Promise<Subscription>;
  /** Durable event publish; resolves once the bus has persisted it. */
  publish(event: BusEvent): Promise<void>;
  /**
   * A durable consumer named `consumer` over the given event kinds. Instances using the same
   * name share the work; an event is redelivered if the handler throws or does not finish.
   */
  consume(
    consumer: string,
    kinds: EventKind[],
    handler: (delivery: EventDelivery) => Promise<void>,
    options?: ConsumeOptions,
  ): Promise<Subscription>;
  /** Cheap round trip for readiness checks. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
