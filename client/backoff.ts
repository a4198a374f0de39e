/**
 * Exponential backoff with full jitter ("Exponential Backoff And Jitter", AWS architecture blog):
 * the n-th wait is uniform in [0, min(cap, base * 2^n)], so many clients that lost the same
 * server do not come back in step. Pure: the random source is injected.
 */

export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  random?: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 250, capMs: 30_000 };

export class Backoff {
  #attempt = 0;
  readonly #random: () => number;

  constructor(readonly options: BackoffOptions = DEFAULT_BACKOFF) {
    if (!(options.baseMs > 0 && options.capMs >= options.baseMs)) {
      throw new RangeError("backoff needs 0 < baseMs <= capMs");
    }
    this.#random = options.random ?? Math.random;
  }

  /** Failures since the last reset. */
  get attempts(): number {
    return this.#attempt;
  }

  /** The wait before the next attempt; grows with every call until reset. */
  next(): number {
    const ceiling = Math.min(
      this.options.capMs,
      this.options.baseMs * 2 ** Math.min(this.#attempt, 30),
    );
    this.#attempt++;
    return Math.floor(this.#random() * ceiling);
  }

  reset(): void {
    this.#attempt = 0;
  }
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
