/**
 * Token-bucket rate limiting, pure and clock-injected. Buckets are kept per key in a bounded
 * map (least recently used evicted first), so an attacker rotating keys cannot grow memory.
 *
 * Limits are per instance: with N instances the cluster-wide ceiling is N times higher, which
 * the defaults account for. Decisions that must hold cluster-wide live in the store instead.
 */

import * as grpc from "@grpc/grpc-js";
import { GuardynError } from "./errors.ts";

export interface RateLimit {
  /** Bucket size: how many calls may burst at once. */
  burst: number;
  /** Sustained calls per second. */
  perSecond: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();

  constructor(
    readonly limit: RateLimit,
    private readonly maxKeys = 100_000,
    private readonly now: () => number = () => Date.now(),
  ) {
    if (!(limit.burst >= 1 && limit.perSecond > 0)) throw new Error("invalid rate limit");
  }

  /** Takes `cost` tokens for `key`; false when the bucket is empty (nothing is taken then). */
  tryTake(key: string, cost = 1): boolean {
    const now = this.now();
    const bucket = this.#refill(key, now);
    if (bucket.tokens < cost) return false;
    bucket.tokens -= cost;
    return true;
  }

  /** Like `tryTake`, but throws RESOURCE_EXHAUSTED with the limit and a retry hint. */
  take(key: string, what: string, cost = 1): void {
    if (this.tryTake(key, cost)) return;
    const retryMs = Math.ceil(((cost - this.#peek(key)) / this.limit.perSecond) * 1000);
    throw new GuardynError(
      grpc.status.RESOURCE_EXHAUSTED,
      "RATE_LIMITED",
      `${what}: rate limit of ${this.limit.perSecond}/s (burst ${this.limit.burst}) exceeded; retry in ${retryMs} ms`,
      undefined,
      retryMs,
    );
  }

  /** Whether `key` could take `cost` tokens now, without taking them. */
  allows(key: string, cost = 1): boolean {
    const bucket = this.#buckets.get(key);
    if (!bucket) return cost <= this.limit.burst;
    const elapsed = Math.max(0, this.now() - bucket.updatedMs) / 1000;
    return Math.min(this.limit.burst, bucket.tokens + elapsed * this.limit.perSecond) >= cost;
  }

  /** Forgets a key (e.g. a successful login clears its failure budget). */
  reset(key: string): void {
    this.#buckets.delete(key);
  }

  get size(): number {
    return this.#buckets.size;
  }

  #peek(key: string): number {
    return this.#buckets.get(key)?.tokens ?? this.limit.burst;
  }

  #refill(key: string, now: number): Bucket {
    let bucket = this.#buckets.get(key);
    if (bucket) {
      this.#buckets.delete(key); // re-insert below: Map order is our LRU order
      const elapsed = Math.max(0, now - bucket.updatedMs) / 1000;
      bucket.tokens = Math.min(this.limit.burst, bucket.tokens + elapsed * this.limit.perSecond);
      bucket.updatedMs = now;
    } else {
      bucket = { tokens: this.limit.burst, updatedMs: now };
      if (this.#buckets.size >= this.maxKeys) {
        const oldest = this.#buckets.keys().next().value;
        if (oldest !== undefined) this.#buckets.delete(oldest);
      }
    }
    this.#buckets.set(key, bucket);
    return bucket;
  }
}
