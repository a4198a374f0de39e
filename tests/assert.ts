/**
 * The assertions used across the test suites: Node's built-in `node:assert/strict` under the
 * names Deno developers expect (the std library is not reachable from this build machine).
 */

import nodeAssert from "node:assert/strict";

export function assert(condition: unknown, message?: string): asserts condition {
  nodeAssert.ok(condition, message ?? "assertion failed");
}

export function assertEquals<T>(
  actual: unknown,
  expected: T,
  message?: string,
): asserts actual is T {
  nodeAssert.deepStrictEqual(actual, expected, message as string);
}

export function assertNotEquals(actual: unknown, expected: unknown, message?: string): void {
  nodeAssert.notDeepStrictEqual(actual, expected, message as string);
}

export async function assertRejects(
  fn: () => Promise<unknown>,
  expected?: RegExp | (new (...args: never[]) => Error),
): Promise<void> {
  await nodeAssert.rejects(fn, expected as RegExp);
}

export function assertThrows(
  fn: () => unknown,
  expected?: RegExp | (new (...args: never[]) => Error),
): void {
  nodeAssert.throws(fn, expected as RegExp);
}

export function assertMatch(actual: string, expected: RegExp, message?: string): void {
  nodeAssert.match(actual, expected, message as string);
}

/** Runs `fn`, which must throw, and returns what it threw (for assertions on the error). */
export function captureError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected the function to throw");
}

/** Awaits `promise`, which must reject, and returns the rejection reason. */
export async function captureRejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the promise to reject");
}
