/**
 * In-process bus for the all-in-one process, with the semantics of the port:
 * - wake-ups and device signals fan out to every current subscriber of the device,
 *   asynchronously;
 * - events go to a bounded log (see memory_log.ts); each consumer name is a durable group that
 *   starts at the oldest retained event, shares work among its subscribers round-robin, and
 *   redelivers an event whose handler throws (bounded exponential backoff) or does not finish
 *   within ackWaitMs, until maxDeliver deliveries, after which the event is logged and dropped.
 * A consumer group outlives its subscribers (events published meanwhile wait for the next one).
 */

import type { Bus, ConsumeOptions, EventDelivery, Subscription } from "./port.ts";
import {
  broadcastSubject,
  type BroadcastTopic,
  type BusEvent,
  checkBroadcastBody,
  decodeSignal,
  type DeviceSignal,
  encodeSignal,
  type EventKind,
  signalSubject,
  validateEvent,
  wakeSubject,
} from "./subjects.ts";
import {
  checkConsumerName,
  checkKinds,
  consumerPolicy,
  type DeliveryPolicy,
  deliveryPolicy,
  isFinalDelivery,
  retryDelayMs,
} from "./delivery.ts";
import { EventLog, type EventLogLimits } from "./memory_log.ts";
import { BusClosedError } from "./errors.ts";
import type { Logger } from "../platform/log.ts";

export interface MemoryBusOptions {
  delivery?: Partial<DeliveryPolicy>;
  log?: Partial<EventLogLimits>;
  /** Distinct consumer names. */
  maxConsumerGroups?: number;
  /** Subscriptions (wake-ups plus consumers) open at once. */
  maxSubscriptions?: number;
}

export const MEMORY_DEFAULTS = {
  log: { maxEvents: 10_000, maxAgeMs: 24 * 3_600_000, duplicateWindowMs: 120_000 },
  maxConsumerGroups: 256,
  maxSubscriptions: 100_000,
} as const;

type Handler = (delivery: EventDelivery) => Promise<void>;
type Listener = (body: Uint8Array | undefined) => void;

interface Member {
  readonly handler: Handler;
  inFlight: number;
  active: boolean;
}

/** One event owed to a consumer group: being handled, or waiting for its redelivery time. */
interface Attempt {
  readonly seq: number;
  readonly event: BusEvent;
  deliveryCount: number;
  handling: boolean;
  /** Handling: ack deadline. Waiting: when it becomes due again. */
  dueAtMs: number;
  /** Identifies the current delivery so a late result of an expired one is ignored. */
  token: number;
}

export function createMemoryBus(logger: Logger, options: MemoryBusOptions = {}): Bus {
  return new MemoryBus(logger, options);
}

class MemoryBus implements Bus {
  readonly info = { backend: "memory", location: "in-process" } as const;
  readonly #log: EventLog;
  readonly #policy: DeliveryPolicy;
  readonly #groups = new Map<string, ConsumerGroup>();
  /** Wake-up and signal listeners by subject. */
  readonly #listeners = new Map<string, Set<Listener>>();
  readonly #maxGroups: number;
  readonly #maxSubscriptions: number;
  #subscriptions = 0;
  #closed = false;

  constructor(private readonly logger: Logger, options: MemoryBusOptions) {
    this.#policy = deliveryPolicy(options.delivery);
    const limits = { ...MEMORY_DEFAULTS.log, ...options.log };
    for (const [field, value] of Object.entries(limits)) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(`memory bus log ${field} must be a positive integer`);
      }
    }
    this.#log = new EventLog(limits);
    this.#maxGroups = options.maxConsumerGroups ?? MEMORY_DEFAULTS.maxConsumerGroups;
    this.#maxSubscriptions = options.maxSubscriptions ?? MEMORY_DEFAULTS.maxSubscriptions;
  }

  wake(accountId: string, deviceId: string): Promise<void> {
    try {
      this.#assertOpen();
      this.#fanOut(wakeSubject(accountId, deviceId), undefined, "wake-up handler failed");
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  onWake(accountId: string, deviceId: string, handler: () => void): Promise<Subscription> {
    try {
      this.#assertOpen();
      return Promise.resolve(this.#listen(wakeSubject(accountId, deviceId), () => handler()));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  signal(accountId: string, deviceId: string, signal: DeviceSignal): Promise<void> {
    try {
      this.#assertOpen();
      // Encoded as over the network: the same validation, and receivers get their own copy.
      const body = encodeSignal(signal);
      this.#fanOut(signalSubject(accountId, deviceId), body, "signal handler failed");
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  onSignal(
    accountId: string,
    deviceId: string,
    handler: (signal: DeviceSignal) => void,
  ): Promise<Subscription> {
    try {
      this.#assertOpen();
      const subject = signalSubject(accountId, deviceId);
      return Promise.resolve(
        this.#listen(subject, (body) => handler(decodeSignal(body ?? new Uint8Array()))),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  broadcast(topic: BroadcastTopic, data: Uint8Array): Promise<void> {
    try {
      this.#assertOpen();
      checkBroadcastBody(data);
      this.#fanOut(broadcastSubject(topic, "memory"), data.slice(), "broadcast handler failed");
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  onBroadcast(topic: BroadcastTopic, handler: (data: Uint8Array) => void): Promise<Subscription> {
    try {
      this.#assertOpen();
      const subject = broadcastSubject(topic, "memory");
      return Promise.resolve(this.#listen(subject, (body) => handler(body ?? new Uint8Array())));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Delivered after the call returns, as over the network; a failing handler hurts nobody else. */
  #fanOut(subject: string, body: Uint8Array | undefined, failure: string): void {
    for (const handler of this.#listeners.get(subject) ?? []) {
      queueMicrotask(() => {
        try {
          handler(body);
        } catch (error) {
          this.logger.warn(failure, { error });
        }
      });
    }
  }

  #listen(subject: string, handler: Listener): Subscription {
    this.#reserveSubscription();
    // A wrapper gives each subscription its own identity even when handlers are shared.
    const entry: Listener = (body) => handler(body);
    const set = this.#listeners.get(subject) ?? new Set();
    set.add(entry);
    this.#listeners.set(subject, set);
    let done = false;
    return {
      unsubscribe: () => {
        if (done) return Promise.resolve();
        done = true;
        this.#subscriptions--;
        set.delete(entry);
        if (set.size === 0 && this.#listeners.get(subject) === set) {
          this.#listeners.delete(subject);
        }
        return Promise.resolve();
      },
    };
  }

  publish(event: BusEvent): Promise<void> {
    try {
      this.#assertOpen();
      const normalized = Object.freeze(validateEvent(event));
      // Normalized events serialize canonically, so the JSON is the duplicate key.
      const key = JSON.stringify(normalized);
      if (!this.#log.append(normalized, key)) return Promise.resolve();
      for (const group of this.#groups.values()) {
        if (group.kinds.has(normalized.kind)) group.dispatch();
      }
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  consume(
    consumer: string,
    kinds: EventKind[],
    handler: Handler,
    options: ConsumeOptions = {},
  ): Promise<Subscription> {
    try {
      this.#assertOpen();
      const name = checkConsumerName(consumer);
      const wanted = checkKinds(kinds);
      let group = this.#groups.get(name);
      if (!group) {
        if (this.#groups.size >= this.#maxGroups) {
          throw new Error(`too many consumer names (limit ${this.#maxGroups})`);
        }
        group = new ConsumerGroup(
          name,
          this.#log,
          consumerPolicy(this.#policy, options),
          this.logger,
        );
        this.#groups.set(name, group);
      }
      this.#reserveSubscription();
      // Like a JetStream durable updated by its latest creator: the newest kinds apply.
      group.kinds = new Set(wanted);
      const member = group.join(handler);
      const joined = group;
      return Promise.resolve({
        unsubscribe: () => {
          if (member.active) {
            this.#subscriptions--;
            joined.leave(member);
          }
          return Promise.resolve();
        },
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  ping(): Promise<void> {
    return this.#closed ? Promise.reject(new BusClosedError()) : Promise.resolve();
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    for (const group of this.#groups.values()) group.stop();
    this.#groups.clear();
    this.#listeners.clear();
    return Promise.resolve();
  }

  #assertOpen(): void {
    if (this.#closed) throw new BusClosedError();
  }

  #reserveSubscription(): void {
    if (this.#subscriptions >= this.#maxSubscriptions) {
      throw new Error(`too many bus subscriptions (limit ${this.#maxSubscriptions})`);
    }
    this.#subscriptions++;
  }
}

/** A durable consumer: its position in the log, the events it owes, and its subscribers. */
class ConsumerGroup {
  kinds = new Set<EventKind>();
  /** Next log sequence to look at for new events; a new group starts at the oldest retained. */
  #cursor: number;
  readonly #owed = new Map<number, Attempt>();
  #members: Member[] = [];
  #turn = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #nextToken = 1;
  #stopped = false;

  constructor(
    readonly name: string,
    private readonly log: EventLog,
    private readonly policy: DeliveryPolicy,
    private readonly logger: Logger,
  ) {
    this.log.trim();
    this.#cursor = log.firstSeq;
  }

  join(handler: Handler): Member {
    const member: Member = { handler, inFlight: 0, active: true };
    this.#members.push(member);
    this.dispatch();
    return member;
  }

  leave(member: Member): void {
    member.active = false;
    this.#members = this.#members.filter((m) => m !== member);
    this.dispatch();
  }

  stop(): void {
    this.#stopped = true;
    this.#members = [];
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Hands out every due or new event a subscriber has room for, then arms the next timer. */
  dispatch(): void {
    if (this.#stopped) return;
    const now = Date.now();
    this.#expireAckDeadlines(now);
    for (;;) {
      const member = this.#nextMember();
      if (!member) break;
      const attempt = this.#nextDue(now) ?? this.#nextNew();
      if (!attempt) break;
      this.#deliver(member, attempt, now);
    }
    this.#arm();
  }

  #deliver(member: Member, attempt: Attempt, now: number): void {
    attempt.deliveryCount++;
    attempt.handling = true;
    attempt.dueAtMs = now + this.policy.ackWaitMs;
    const token = attempt.token = this.#nextToken++;
    member.inFlight++;
    const delivery = { event: attempt.event, deliveryCount: attempt.deliveryCount };
    Promise.resolve()
      .then(() => member.handler(delivery))
      .then(
        () => {
          if (attempt.token === token) this.#owed.delete(attempt.seq);
        },
        (error) => {
          if (attempt.token === token) this.#failed(attempt, error);
        },
      )
      .finally(() => {
        member.inFlight--;
        this.dispatch();
      });
  }

  #failed(attempt: Attempt, error: unknown): void {
    attempt.token = 0;
    attempt.handling = false;
    if (isFinalDelivery(attempt.deliveryCount, this.policy)) {
      this.#owed.delete(attempt.seq);
      this.logger.error("bus event dropped after max deliveries", {
        consumer: this.name,
        kind: attempt.event.kind,
        deliveries: attempt.deliveryCount,
        error: error instanceof Error ? error : String(error),
      });
      return;
    }
    attempt.dueAtMs = Date.now() + retryDelayMs(attempt.deliveryCount, this.policy);
  }

  #expireAckDeadlines(now: number): void {
    for (const attempt of this.#owed.values()) {
      if (attempt.handling && attempt.dueAtMs <= now) {
        this.#failed(
          attempt,
          new Error(`handler did not finish within ${this.policy.ackWaitMs} ms`),
        );
        // JetStream redelivers as soon as the ack wait expires; so do we.
        if (this.#owed.has(attempt.seq)) attempt.dueAtMs = now;
      }
    }
  }

  /** Round-robin over subscribers that have a free handler slot. */
  #nextMember(): Member | undefined {
    for (let i = 0; i < this.#members.length; i++) {
      const member = this.#members[(this.#turn + i) % this.#members.length]!;
      if (member.inFlight < this.policy.concurrency) {
        this.#turn = (this.#turn + i + 1) % this.#members.length;
        return member;
      }
    }
    return undefined;
  }

  /** The oldest event whose redelivery time has come. */
  #nextDue(now: number): Attempt | undefined {
    let due: Attempt | undefined;
    for (const attempt of this.#owed.values()) {
      if (!attempt.handling && attempt.dueAtMs <= now && (!due || attempt.seq < due.seq)) {
        due = attempt;
      }
    }
    return due;
  }

  /** The next event of a wanted kind from the log, unless too many are unacknowledged. */
  #nextNew(): Attempt | undefined {
    if (this.#owed.size >= this.policy.maxAckPending) return undefined;
    this.log.trim();
    if (this.#cursor < this.log.firstSeq) {
      this.logger.warn("bus consumer skipped events discarded by the retention limits", {
        consumer: this.name,
        skipped: this.log.firstSeq - this.#cursor,
      });
      this.#cursor = this.log.firstSeq;
    }
    while (this.#cursor < this.log.nextSeq) {
      const entry = this.log.get(this.#cursor++);
      if (entry && this.kinds.has(entry.event.kind)) {
        const attempt: Attempt = {
          seq: entry.seq,
          event: entry.event,
          deliveryCount: 0,
          handling: false,
          dueAtMs: 0,
          token: 0,
        };
        this.#owed.set(entry.seq, attempt);
        return attempt;
      }
    }
    return undefined;
  }

  /** One timer per group, for the earliest redelivery or ack deadline, only while subscribed. */
  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#members.length === 0) return;
    let earliest = Infinity;
    for (const attempt of this.#owed.values()) earliest = Math.min(earliest, attempt.dueAtMs);
    if (earliest === Infinity) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.dispatch();
    }, Math.max(earliest - Date.now(), 0));
  }
}
