/** Assertions on CryptoError codes, shared by the crypto tests. */
import { assertEquals, captureError, captureRejection } from "../tests/assert.ts";
import { CryptoError, type CryptoErrorCode } from "./errors.ts";

function codeOf(error: unknown): string {
  if (error instanceof CryptoError) return error.code;
  throw new Error(`expected a CryptoError, got ${String(error)}`);
}

/** `fn` must throw a CryptoError with `code`. */
export function expectCode(fn: () => unknown, code: CryptoErrorCode): void {
  assertEquals(codeOf(captureError(fn)), code);
}

/** `promise` must reject with a CryptoError with `code`. */
export async function expectRejectionCode(
  promise: Promise<unknown>,
  code: CryptoErrorCode,
): Promise<void> {
  assertEquals(codeOf(await captureRejection(promise)), code);
}
