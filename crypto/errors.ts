/**
 * The one error type of the E2EE library. `code` is stable and machine-readable so callers (the
 * client SDK) can react without parsing messages; messages never contain key material.
 */
export type CryptoErrorCode =
  /** A length, count or range limit was exceeded, or an argument is malformed. */
  | "invalid-argument"
  /** Bytes that should hold an encoded structure do not parse. */
  | "malformed"
  /** A version or type byte names something this library does not implement. */
  | "unsupported-version"
  /** A public key is not a valid, canonical key of the expected type (e.g. low order). */
  | "invalid-key"
  /** A signature over a prekey does not verify. */
  | "invalid-signature"
  /** An X25519 output was all zero (the peer sent a low-order point). */
  | "invalid-shared-secret"
  /** AEAD authentication failed: tampered, truncated or addressed to another session. */
  | "decryption-failed"
  /** The message was already decrypted, or its key was skipped and has since expired. */
  | "duplicate-message"
  /** The message would need more skipped keys than the limits allow. */
  | "too-many-skipped-messages"
  /** The responder has no prekey with the id named by the initial message. */
  | "unknown-prekey"
  /** A one-time prekey named by the initial message has already been used. */
  | "prekey-reused"
  /** A bundle or initial message lacks the post-quantum KEM prekey that policy requires. */
  | "post-quantum-required"
  /** A prekey message belongs to a different session than the one asked to decrypt it. */
  | "session-mismatch"
  /** The session cannot perform the operation in its current state. */
  | "invalid-state";

export class CryptoError extends Error {
  readonly code: CryptoErrorCode;

  constructor(code: CryptoErrorCode, message: string) {
    super(message);
    this.name = "CryptoError";
    this.code = code;
  }
}
