/**
 * Delivery rules shared by every bus adapter: redelivery backoff, limits, and the checks on
 * consumer names and event kinds. Pure functions, no I/O.
 */

import { EVENT_KINDS, type EventKind } from "./subjects.ts";

export interface DeliveryPolicy {
  /** A handler that has not finished after this long is considered failed; the event is redelivered. */
  ackWaitMs: number;
  /** Deliveries per event and consumer; after the last failed one the event is logged and dropped. */
  maxDeliver: number;
  /** Redelivery delay after the first failure; doubles on each further failure. */
  retryBaseMs: number;
  /** Upper bound of the redelivery delay. */
  retryMaxMs: number;
  /** Events delivered but not yet acknowledged per consumer; new events wait beyond this. */
  maxAckPending: number;
  /** Handlers running at once per subscription. */
  concurrency: number;
}

export const DEFAULT_DELIVERY_POLICY: Readonly<DeliveryPolicy> = Object.freeze({
  ackWaitMs: 30_000,
  maxDeliver: 5,
  retryBaseMs: 1_000,
  retryMaxMs: 60_000,
  maxAckPending: 1_000,
  concurrency: 16,
});

const LIMITS: Record<keyof DeliveryPolicy, readonly [number, number]> = {
  ackWaitMs: [100, 3_600_000],
  maxDeliver: [1, 100],
  retryBaseMs: [1, 600_000],
  retryMaxMs: [1, 3_600_000],
  maxAckPending: [1, 100_000],
  concurrency: [1, 1_000],
};

/** The bus policy with one consumer's overrides, checked like the policy itself. */
export function consumerPolicy(
  policy: DeliveryPolicy,
  options: { concurrency?: number },
): DeliveryPolicy {
  if (options.concurrency === undefined) return policy;
  return deliveryPolicy({
    ...policy,
    concurrency: options.concurrency,
    maxAckPending: Math.max(policy.maxAckPending, options.concurrency),
  });
}

/** Fills defaults and rejects out-of-range values with a message naming the field. */
export function deliveryPolicy(overrides: Partial<DeliveryPolicy> = {}): DeliveryPolicy {
  const policy = { ...DEFAULT_DELIVERY_POLICY, ...overrides };
  for (const [field, [min, max]] of Object.entries(LIMITS)) {
    const value = policy[field as keyof DeliveryPolicy];
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new RangeError(`delivery policy ${field} must be an integer in ${min}..${max}`);
    }
  }
  if (policy.retryMaxMs < policy.retryBaseMs) {
    throw new RangeError("delivery policy retryMaxMs must be >= retryBaseMs");
  }
  return policy;
}

/** Delay before redelivering after the `deliveryCount`-th delivery failed: bounded exponential. */
export function retryDelayMs(
  deliveryCount: number,
  policy: Pick<DeliveryPolicy, "retryBaseMs" | "retryMaxMs">,
): number {
  const exponent = Math.min(Math.max(deliveryCount - 1, 0), 30);
  return Math.min(policy.retryBaseMs * 2 ** exponent, policy.retryMaxMs);
}

/** True when this failed delivery was the last one allowed. */
export function isFinalDelivery(deliveryCount: number, policy: Pick<DeliveryPolicy, "maxDeliver">) {
  return deliveryCount >= policy.maxDeliver;
}

/** Consumer names become JetStream durable names: no separators, wildcards or spaces. */
const CONSUMER_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export function checkConsumerName(name: string): string {
  if (typeof name !== "string" || !CONSUMER_NAME.test(name)) {
    throw new Error("consumer name must be 1..64 chars of A-Z a-z 0-9 _ -");
  }
  return name;
}

/** Non-empty, known kinds; duplicates removed, order kept. */
export function checkKinds(kinds: readonly EventKind[]): EventKind[] {
  if (!Array.isArray(kinds) || kinds.length === 0) {
    throw new Error("a consumer needs at least one event kind");
  }
  for (const kind of kinds) {
    if (!EVENT_KINDS.includes(kind)) {
      throw new Error(`unknown event kind ${JSON.stringify(String(kind).slice(0, 40))}`);
    }
  }
  return [...new Set(kinds)];
}
