/**
 * A minimal typed listener list: listeners run synchronously; one that throws does not stop
 * the others, and its error goes to `onListenerError` (the SDK never prints).
 */
export class Listeners<E> {
  readonly #listeners = new Set<(event: E) => void>();

  constructor(
    private readonly onListenerError: (error: unknown, event: E) => void = () => {},
  ) {}

  /** Adds a listener; returns the function that removes it. */
  on(listener: (event: E) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(event: E): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch (error) {
        // A broken listener is the app's bug; keep delivering to the others.
        this.onListenerError(error, event);
      }
    }
  }
}
