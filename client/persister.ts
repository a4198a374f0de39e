/**
 * Coalesced durable saves: `save()` resolves once a write that started after the call has
 * finished, so every change made before the call is on disk. Concurrent callers share writes:
 * at most one write runs and at most one more is queued.
 */

export class Persister {
  #running: Promise<void> | undefined;
  #queued: Promise<void> | undefined;

  constructor(private readonly write: () => Promise<void>) {}

  save(): Promise<void> {
    if (!this.#running) {
      this.#running = this.write().finally(() => (this.#running = undefined));
      return this.#running;
    }
    // A write is running with older state: queue one more (shared by every caller until it starts).
    this.#queued ??= this.#running.catch(() => {}).then(() => {
      this.#queued = undefined;
      return this.save();
    });
    return this.#queued;
  }
}
