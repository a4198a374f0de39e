/** Small cancellable async primitives, so stopping never leaves a timer or a waiter behind. */

/** A counting semaphore whose waiters are released with `false` once aborted. */
export class Slots {
  #free: number;
  #waiters: ((granted: boolean) => void)[] = [];
  #aborted = false;

  constructor(size: number) {
    this.#free = size;
  }

  acquire(): Promise<boolean> {
    if (this.#aborted) return Promise.resolve(false);
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  release(): void {
    const next = this.#waiters.shift();
    if (next) next(true);
    else this.#free++;
  }

  abort(): void {
    this.#aborted = true;
    for (const waiter of this.#waiters.splice(0)) waiter(false);
  }
}

/** A sleep that `cancel()` ends early (resolving, not rejecting). */
export class Pause {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#wake = undefined;
        resolve();
      }, ms);
    });
  }

  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#wake?.();
    this.#wake = undefined;
  }
}

/** Settles with `promise`, or rejects with `onTimeout()` after `ms`; the timer is always cleared. */
export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  onTimeout: () => Error,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
