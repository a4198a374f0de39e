/**
 * The SDK's one error type. `code` is machine-readable: a server reason from the contract
 * (`guardyn-error-reason`, e.g. `USERNAME_TAKEN`), a transport condition when the server sent no
 * reason (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, ...), or a client-side condition (`BAD_PASSPHRASE`,
 * `IDENTITY_CHANGED`, ...). Messages are English for humans and never carry secrets.
 */

import * as grpc from "@grpc/grpc-js";
import {
  type ErrorReason as ErrorReasonEnum,
  MismatchedDevices,
} from "../proto/gen/guardyn/v1/common.ts";

/** Reason names of `guardyn.v1.ErrorReason` without the prefix: the contract is the source. */
export type ServerReason = Exclude<
  keyof typeof ErrorReasonEnum extends infer K
    ? K extends `ERROR_REASON_${infer Name}` ? Name : never
    : never,
  "UNSPECIFIED"
>;

/** A failed call that carried no reason, named by its status code. */
export type TransportCode =
  | "UNAVAILABLE"
  | "CANCELLED"
  | "UNKNOWN_SERVER_ERROR";

/** Conditions the SDK itself detects. */
export type LocalCode =
  /** The passphrase does not open the profile (or the file was tampered with). */
  | "BAD_PASSPHRASE"
  /** The profile file is corrupt, of an unknown version, or not a profile. */
  | "PROFILE_CORRUPT"
  /** Another process has the profile open. */
  | "PROFILE_LOCKED"
  /** A profile exists already where a new one was to be created, or none where one was opened. */
  | "PROFILE_EXISTS"
  | "PROFILE_MISSING"
  /** The operation needs a signed-in device, or a fresh profile, and the profile is not. */
  | "NOT_SIGNED_IN"
  | "ALREADY_SIGNED_IN"
  /** The tokens are gone (refresh token invalid or expired): log in again. */
  | "LOGIN_REQUIRED"
  /** A verified contact's identity key changed; sending waits until the user accepts it. */
  | "IDENTITY_CHANGED"
  /** A device link code or provisioning blob is malformed or does not open. */
  | "BAD_LINK_CODE"
  /** A bundle, message or blob from the server or a peer failed a cryptographic check. */
  | "CRYPTO_FAILURE"
  /** The server kept refusing the device set of a message after refreshing it. */
  | "DEVICE_SET_UNSTABLE"
  /** Bad input from the caller (too long, empty, unknown contact, ...). */
  | "BAD_INPUT"
  /** The client was closed. */
  | "CLOSED";

export type ClientErrorCode = ServerReason | TransportCode | LocalCode;

export class GuardynClientError extends Error {
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    readonly details: {
      status?: grpc.status;
      retryAfterMs?: number;
      mismatch?: MismatchedDevices;
      cause?: unknown;
    } = {},
  ) {
    super(message);
    this.name = "GuardynClientError";
  }

  /** Worth retrying the same request later (after `retryAfterMs` when given). */
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }
}

const RETRYABLE: ReadonlySet<ClientErrorCode> = new Set<ClientErrorCode>([
  "UNAVAILABLE",
  "UNAVAILABLE_BACKEND",
  "SHUTTING_DOWN",
  "RATE_LIMITED",
  "DEADLINE_EXCEEDED",
  "SCHEMA_MISMATCH",
]);

const REASON_KEY = "guardyn-error-reason";
const DETAIL_KEY = "guardyn-error-detail-bin";
const RETRY_AFTER_KEY = "guardyn-retry-after-ms";
const REASON_PATTERN = /^[A-Z_]{1,40}$/;

/** Translates a grpc-js failure (status + trailers) into a typed error. */
export function fromServiceError(error: unknown): GuardynClientError {
  if (error instanceof GuardynClientError) return error;
  const failure = error as Partial<grpc.ServiceError> | null;
  const status = failure?.code;
  if (typeof status !== "number") {
    return new GuardynClientError("UNKNOWN_SERVER_ERROR", String(error), { cause: error });
  }
  const metadata = failure?.metadata;
  const rawReason = metadata?.get(REASON_KEY)[0];
  const reason = typeof rawReason === "string" && REASON_PATTERN.test(rawReason)
    ? rawReason as ServerReason
    : undefined;
  const rawRetry = metadata?.get(RETRY_AFTER_KEY)[0];
  const retryAfterMs = typeof rawRetry === "string" && /^\d{1,9}$/.test(rawRetry)
    ? Number(rawRetry)
    : undefined;
  let mismatch: MismatchedDevices | undefined;
  const rawDetail = metadata?.get(DETAIL_KEY)[0];
  if (
    rawDetail instanceof Uint8Array &&
    (reason === "MISMATCHED_DEVICES" || reason === "STALE_DEVICES")
  ) {
    try {
      mismatch = MismatchedDevices.decode(rawDetail);
    } catch {
      mismatch = undefined;
    }
  }
  const code = reason ?? codeOfStatus(status);
  const text = failure?.details || grpc.status[status] || "call failed";
  return new GuardynClientError(code, text, { status, retryAfterMs, mismatch, cause: error });
}

function codeOfStatus(status: grpc.status): ClientErrorCode {
  switch (status) {
    case grpc.status.UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc.status.DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc.status.CANCELLED:
      return "CANCELLED";
    case grpc.status.RESOURCE_EXHAUSTED:
      return "REQUEST_TOO_LARGE";
    case grpc.status.UNAUTHENTICATED:
      return "TOKEN_INVALID";
    case grpc.status.NOT_FOUND:
      return "NOT_FOUND";
    case grpc.status.INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc.status.PERMISSION_DENIED:
      return "FORBIDDEN";
    default:
      return "UNKNOWN_SERVER_ERROR";
  }
}

export const badInput = (message: string) => new GuardynClientError("BAD_INPUT", message);
