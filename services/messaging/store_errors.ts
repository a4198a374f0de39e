/**
 * Store and bus failures as the gRPC statuses clients act on: bad input is INVALID_ARGUMENT,
 * a reused idempotency key with other content ALREADY_EXISTS, and anything meaning "the backend
 * did not answer" UNAVAILABLE (retry with backoff). Unknown errors pass through (INTERNAL).
 */

import * as grpc from "@grpc/grpc-js";
import { BusUnavailableError } from "../bus/errors.ts";
import { GuardynError, invalidArgument, unavailable } from "../platform/errors.ts";
import {
  DeliveryPendingError,
  IdempotencyConflictError,
  StoreInputError,
  StoreUnavailableError,
} from "../store/errors.ts";

/** cassandra-driver errors that mean the cluster did not answer in time. */
const DRIVER_UNAVAILABLE = new Set([
  "NoHostAvailableError",
  "OperationTimedOutError",
  "BusyConnectionError",
]);

export function backendFailure(error: unknown): unknown {
  if (error instanceof GuardynError) return error;
  if (error instanceof StoreInputError) return invalidArgument(error.message);
  if (error instanceof IdempotencyConflictError) {
    return new GuardynError(
      grpc.status.ALREADY_EXISTS,
      "ALREADY_EXISTS",
      "client_message_id was already used by this device for a different message",
    );
  }
  if (error instanceof DeliveryPendingError) {
    return unavailable(
      "the first attempt with this client_message_id is still being written; retry",
    );
  }
  if (
    error instanceof StoreUnavailableError || error instanceof BusUnavailableError ||
    (error instanceof Error && DRIVER_UNAVAILABLE.has(error.name)) ||
    isWriteTimeout(error)
  ) {
    return unavailable("a backend is unavailable; retry with backoff");
  }
  return error;
}

/** CQL read/write timeouts and unavailable replicas arrive as ResponseError with these codes. */
function isWriteTimeout(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  const name = (error as { name?: unknown } | null)?.name;
  // 0x1000 Unavailable, 0x1100 WriteTimeout, 0x1200 ReadTimeout (CQL native protocol).
  return name === "ResponseError" && (code === 0x1000 || code === 0x1100 || code === 0x1200);
}
