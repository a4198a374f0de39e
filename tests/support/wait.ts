/**
 * Waiting in tests, written once: `sleep` (the services' own, services/platform/time.ts),
 * `waitUntil` for a condition with a named failure, and the sanitizer options of tests that
 * start servers whose sockets and timers outlive a single test step.
 */

export { sleep } from "../../services/platform/time.ts";

/** Polls `condition` until true; fails naming `what` after `timeoutMs`. */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string | (() => string),
  timeoutMs = 15_000,
  intervalMs = 10,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!await condition()) {
    if (Date.now() > deadline) {
      const described = typeof what === "string" ? what : what();
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${described}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** For tests that run servers, clients and backends across steps (connections, timers). */
export const NO_SANITIZERS = { sanitizeOps: false, sanitizeResources: false } as const;
