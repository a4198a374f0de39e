/**
 * The in-process event stream: a bounded, time-limited log of published events with a duplicate
 * window, mirroring a JetStream stream with limits retention and DiscardPolicy.Old.
 * Overflow policy: when full, the oldest event is discarded to make room; a consumer that had
 * not yet received it skips it (the consumer group logs how many it lost).
 */

import type { BusEvent } from "./subjects.ts";

export interface EventLogLimits {
  /** Events retained; the oldest is discarded beyond this. */
  maxEvents: number;
  /** Events older than this are discarded. */
  maxAgeMs: number;
  /** A publish equal to one seen within this window is acknowledged but not stored again. */
  duplicateWindowMs: number;
}

export interface LoggedEvent {
  readonly seq: number;
  readonly event: BusEvent;
  readonly storedAtMs: number;
}

export class EventLog {
  #entries: LoggedEvent[] = [];
  /** Index of the oldest retained entry: trimming advances it, compaction is amortized. */
  #head = 0;
  /** Sequence of the next event to store; sequences start at 1 like JetStream's. */
  #nextSeq = 1;
  /** Duplicate-window keys in insertion (hence expiry) order. */
  #recent = new Map<string, number>();

  constructor(readonly limits: EventLogLimits, private readonly now: () => number = Date.now) {}

  /** Stores an event unless a duplicate key was seen within the window; returns false then. */
  append(event: BusEvent, duplicateKey: string): boolean {
    const now = this.now();
    this.#expireDuplicates(now);
    if (this.#recent.has(duplicateKey)) return false;
    this.#recent.set(duplicateKey, now + this.limits.duplicateWindowMs);
    if (this.#recent.size > this.limits.maxEvents) {
      const oldest = this.#recent.keys().next().value;
      if (oldest !== undefined) this.#recent.delete(oldest);
    }
    this.#entries.push({ seq: this.#nextSeq++, event, storedAtMs: now });
    this.trim();
    return true;
  }

  /** Applies the count and age limits. */
  trim(): void {
    const cutoff = this.now() - this.limits.maxAgeMs;
    let head = Math.max(this.#head, this.#entries.length - this.limits.maxEvents);
    while (head < this.#entries.length && this.#entries[head]!.storedAtMs < cutoff) head++;
    this.#head = head;
    // Compact only when the dropped prefix is large, so a full log costs O(1) per publish.
    if (head > 1024 && head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(head);
      this.#head = 0;
    }
  }

  /** Sequence of the oldest retained event (== nextSeq when empty). */
  get firstSeq(): number {
    return this.#entries[this.#head]?.seq ?? this.#nextSeq;
  }

  get nextSeq(): number {
    return this.#nextSeq;
  }

  get size(): number {
    return this.#entries.length - this.#head;
  }

  /** The event stored under `seq`, if still retained. */
  get(seq: number): LoggedEvent | undefined {
    if (seq < this.firstSeq) return undefined;
    return this.#entries[this.#head + seq - this.firstSeq];
  }

  #expireDuplicates(now: number): void {
    for (const [key, expiresAt] of this.#recent) {
      if (expiresAt > now) break;
      this.#recent.delete(key);
    }
  }
}
