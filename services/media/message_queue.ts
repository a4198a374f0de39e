/**
 * The messages of a request stream (grpc-js or the web listener's call, both EventEmitters
 * with pause/resume) as an async iterator, with backpressure: reading pauses while `high`
 * messages wait unread.
 */
interface ReadableCall<T> {
  on(event: "data", listener: (message: T) => void): unknown;
  on(event: "end" | "error", listener: (error?: unknown) => void): unknown;
  pause(): void;
  resume(): void;
}

export async function* messagesOf<T>(call: ReadableCall<T>, high = 4): AsyncGenerator<T> {
  const queue: T[] = [];
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  call.on("data", (message: T) => {
    queue.push(message);
    if (queue.length >= high) call.pause();
    notify();
  });
  call.on("end", () => {
    ended = true;
    notify();
  });
  call.on("error", (error?: unknown) => {
    failure = error ?? new Error("the request stream failed");
    notify();
  });
  for (;;) {
    if (queue.length > 0) {
      const next = queue.shift()!;
      if (queue.length < high) call.resume();
      yield next;
      continue;
    }
    if (failure) throw failure;
    if (ended) return;
    await new Promise<void>((resolve) => (wake = resolve));
  }
}
