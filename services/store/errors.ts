/**
 * Errors the store raises. Services map them to gRPC codes: StoreInputError to
 * INVALID_ARGUMENT, IdempotencyConflictError to ALREADY_EXISTS, DeliveryPendingError and
 * StoreUnavailableError to UNAVAILABLE (retryable); SchemaMismatchError stops startup.
 */

/** Bad input to a store call (a limit exceeded, a malformed field). Never retryable. */
export class StoreInputError extends Error {
  override name = "StoreInputError";
}

/** The configured backend cannot be reached; startup must fail, never fall back elsewhere. */
export class StoreUnavailableError extends Error {
  override name = "StoreUnavailableError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The database schema is not the one this binary knows (older, newer or foreign). */
export class SchemaMismatchError extends Error {
  override name = "SchemaMismatchError";
}

/** A (sender device, clientMessageId) pair was reused for different envelopes. */
export class IdempotencyConflictError extends Error {
  override name = "IdempotencyConflictError";
}

/**
 * Another request with the same (sender device, clientMessageId) is still being written
 * (cluster backend only); the caller should retry shortly and will then get the first result.
 */
export class DeliveryPendingError extends Error {
  override name = "DeliveryPendingError";
}
