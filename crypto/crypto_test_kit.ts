/** Helpers shared by the crypto tests: CryptoError code assertions and fixtures. */
import { assertEquals, captureError, captureRejection } from "../tests/assert.ts";
import { CryptoError, type CryptoErrorCode } from "./errors.ts";
import { randomBytes, x25519GenerateKeyPair } from "./primitives.ts";
import { initRatchetAsInitiator, initRatchetAsResponder, type RatchetState } from "./ratchet.ts";

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

/** Two ratchet states set up as after a key agreement (random SK and AD unless given). */
export async function ratchetPair(
  sharedSecret = randomBytes(32),
  associatedData = randomBytes(66),
): Promise<{ alice: RatchetState; bob: RatchetState }> {
  const bobKey = await x25519GenerateKeyPair();
  return {
    alice: await initRatchetAsInitiator(sharedSecret, associatedData, bobKey.publicKey),
    bob: initRatchetAsResponder(sharedSecret, associatedData, bobKey),
  };
}
