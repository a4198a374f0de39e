/**
 * Content-free mailbox events for the notification service: `mailbox.written` (push-worthy mail
 * arrived for a device) and `mailbox.acked` (the device took some out).
 *
 * Events are hints (the store is the truth), so they never slow down or fail a send: they are
 * queued, coalesced per device and kind over a short window (counts add up), and published in
 * the background with bounded concurrency. While the bus is down they wait and are retried with
 * backoff; beyond `maxPending` devices new events are dropped and counted.
 */

import type { Bus } from "../bus/port.ts";
import type { BusEvent } from "../bus/subjects.ts";
import type { Logger } from "../platform/log.ts";
import type { DeviceRef } from "../store/ports.ts";

export interface MailboxEventOptions {
  /** How long events gather before a publish round. */
  flushDelayMs?: number;
  /** Distinct (device, kind) entries waiting; more are dropped. */
  maxPending?: number;
  /** Publishes in flight at once. */
  concurrency?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
  now?: () => number;
}

type MailboxEvent = Extract<BusEvent, { kind: "mailbox.written" | "mailbox.acked" }>;

export class MailboxEvents {
  readonly #pending = new Map<string, MailboxEvent>();
  readonly #flushDelayMs: number;
  readonly #maxPending: number;
  readonly #concurrency: number;
  readonly #retryMinMs: number;
  readonly #retryMaxMs: number;
  readonly #now: () => number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #flushing: Promise<void> | undefined;
  #failures = 0;
  #stopped = false;
  /** Events dropped because the queue was full (exported as a metric by the module). */
  dropped = 0;
  published = 0;

  constructor(
    private readonly bus: Bus,
    private readonly log: Logger,
    options: MailboxEventOptions = {},
  ) {
    this.#flushDelayMs = options.flushDelayMs ?? 20;
    this.#maxPending = options.maxPending ?? 100_000;
    this.#concurrency = options.concurrency ?? 32;
    this.#retryMinMs = options.retryMinMs ?? 250;
    this.#retryMaxMs = options.retryMaxMs ?? 5_000;
    this.#now = options.now ?? Date.now;
  }

  /** `urgent`: one of them is an incoming call; the coalesced event stays urgent. */
  written(owner: DeviceRef, count: number, urgent = false): void {
    this.#add("mailbox.written", owner, count, urgent);
  }

  acked(owner: DeviceRef, count: number): void {
    this.#add("mailbox.acked", owner, count);
  }

  get pending(): number {
    return this.#pending.size;
  }

  /** Publishes what is queued (one round, bounded by `timeoutMs`) and stops. */
  async stop(timeoutMs = 2_000): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const round = this.#flushing ?? this.#flush();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      round,
      new Promise((resolve) => timer = setTimeout(resolve, timeoutMs)),
    ]);
    clearTimeout(timer);
    this.#stopped = true;
    if (this.#pending.size > 0) {
      this.log.warn("mailbox events not published at shutdown", { events: this.#pending.size });
    }
  }

  #add(kind: MailboxEvent["kind"], owner: DeviceRef, count: number, urgent = false): void {
    if (this.#stopped || count <= 0) return;
    const key = `${kind}\n${owner.accountId}\n${owner.deviceId}`;
    const existing = this.#pending.get(key);
    if (existing) {
      existing.count += count;
      existing.atMs = Math.max(existing.atMs, this.#now());
      if (urgent && existing.kind === "mailbox.written") existing.urgent = true;
    } else if (this.#pending.size >= this.#maxPending) {
      if (this.dropped++ % 10_000 === 0) {
        this.log.warn("mailbox event queue full; dropping events", { limit: this.#maxPending });
      }
      return;
    } else {
      const event: MailboxEvent = {
        kind,
        accountId: owner.accountId,
        deviceId: owner.deviceId,
        count,
        atMs: this.#now(),
      };
      if (urgent && event.kind === "mailbox.written") event.urgent = true;
      this.#pending.set(key, event);
    }
    this.#schedule(this.#flushDelayMs);
  }

  #schedule(delayMs: number): void {
    if (this.#timer !== undefined || this.#flushing || this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flushing = this.#flush().finally(() => {
        this.#flushing = undefined;
        if (this.#pending.size > 0) this.#schedule(this.#nextDelay());
      });
    }, delayMs);
  }

  #nextDelay(): number {
    if (this.#failures === 0) return this.#flushDelayMs;
    return Math.min(this.#retryMaxMs, this.#retryMinMs * 2 ** Math.min(this.#failures - 1, 10));
  }

  async #flush(): Promise<void> {
    const batch = [...this.#pending.entries()];
    this.#pending.clear();
    let failed = 0;
    let firstError: unknown;
    let next = 0;
    const worker = async () => {
      while (next < batch.length) {
        const [key, event] = batch[next++]!;
        try {
          await this.bus.publish(event);
          this.published++;
        } catch (error) {
          failed++;
          firstError ??= error;
          this.#requeue(key, event);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, batch.length) }, worker));
    if (failed === 0) {
      this.#failures = 0;
      return;
    }
    if (this.#failures++ === 0) {
      this.log.warn("mailbox events not published; retrying", { failed, error: firstError });
    }
  }

  /** Puts a failed event back, merged with anything queued for the same device since. */
  #requeue(key: string, event: MailboxEvent): void {
    const newer = this.#pending.get(key);
    if (newer) {
      newer.count += event.count;
      if (event.kind === "mailbox.written" && event.urgent && newer.kind === event.kind) {
        newer.urgent = true;
      }
      return;
    }
    if (this.#pending.size >= this.#maxPending) {
      this.dropped++;
      return;
    }
    this.#pending.set(key, event);
  }
}
