/**
 * The one error mapping: domain code throws `GuardynError` with a gRPC status code and a
 * machine-readable reason; the server kit turns it into a gRPC status whose trailing metadata
 * carries the reason (`guardyn-error-reason`) and optional binary detail. Anything else becomes
 * INTERNAL with a request id and no internals, and is logged in full on the server side only.
 */

import * as grpc from "@grpc/grpc-js";
import type { ErrorReason as ErrorReasonEnum } from "../../proto/gen/guardyn/v1/common.ts";

export const REASON_METADATA_KEY = "guardyn-error-reason";
export const DETAIL_METADATA_KEY = "guardyn-error-detail-bin";
/** Sent with RATE_LIMITED and SHUTTING_DOWN: when a retry may succeed. */
export const RETRY_AFTER_METADATA_KEY = "guardyn-retry-after-ms";

/** Reason names of `guardyn.v1.ErrorReason` without the enum prefix: the contract is the source. */
export type ErrorReason = Exclude<
  keyof typeof ErrorReasonEnum extends infer K
    ? K extends `ERROR_REASON_${infer Name}` ? Name : never
    : never,
  "UNSPECIFIED"
>;

export class GuardynError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly reason: ErrorReason,
    message: string,
    /** Optional serialized detail message (e.g. MismatchedDevices), sent as binary metadata. */
    readonly detail?: Uint8Array,
    /** Optional hint for clients: retry after this many milliseconds. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "GuardynError";
  }
}

export const invalidArgument = (message: string, reason: ErrorReason = "INVALID_ARGUMENT") =>
  new GuardynError(grpc.status.INVALID_ARGUMENT, reason, message);
export const unauthenticated = (reason: ErrorReason, message: string) =>
  new GuardynError(grpc.status.UNAUTHENTICATED, reason, message);
export const permissionDenied = (message: string, reason: ErrorReason = "FORBIDDEN") =>
  new GuardynError(grpc.status.PERMISSION_DENIED, reason, message);
export const notFound = (message: string, reason: ErrorReason = "NOT_FOUND") =>
  new GuardynError(grpc.status.NOT_FOUND, reason, message);
export const resourceExhausted = (message: string, reason: ErrorReason = "LIMIT_EXCEEDED") =>
  new GuardynError(grpc.status.RESOURCE_EXHAUSTED, reason, message);
export const failedPrecondition = (message: string, reason: ErrorReason, detail?: Uint8Array) =>
  new GuardynError(grpc.status.FAILED_PRECONDITION, reason, message, detail);
export const unavailable = (message: string, reason: ErrorReason = "UNAVAILABLE_BACKEND") =>
  new GuardynError(grpc.status.UNAVAILABLE, reason, message);

/** Converts any thrown value into the status sent to the client. */
export function toStatus(
  error: unknown,
  requestId: string,
): { status: Partial<grpc.StatusObject>; internal: boolean } {
  const metadata = new grpc.Metadata();
  if (error instanceof GuardynError) {
    metadata.set(REASON_METADATA_KEY, error.reason);
    if (error.detail) metadata.set(DETAIL_METADATA_KEY, Buffer.from(error.detail));
    if (error.retryAfterMs !== undefined) {
      metadata.set(RETRY_AFTER_METADATA_KEY, String(Math.max(0, Math.ceil(error.retryAfterMs))));
    }
    return { status: { code: error.code, details: error.message, metadata }, internal: false };
  }
  metadata.set(REASON_METADATA_KEY, "INTERNAL");
  return {
    status: {
      code: grpc.status.INTERNAL,
      details: `internal error (request id ${requestId})`,
      metadata,
    },
    internal: true,
  };
}

/** Client side: the reason of a failed call, or undefined. */
export function reasonOf(error: unknown): string | undefined {
  const metadata = (error as { metadata?: grpc.Metadata } | null)?.metadata;
  const value = metadata?.get(REASON_METADATA_KEY)[0];
  return typeof value === "string" ? value : undefined;
}
