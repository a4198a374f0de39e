import * as grpc from "@grpc/grpc-js";
import { assertEquals } from "../tests/assert.ts";
import { MismatchedDevices } from "../proto/gen/guardyn/v1/common.ts";
import { fromServiceError, GuardynClientError } from "./errors.ts";

function serviceError(
  code: grpc.status,
  details: string,
  trailers: Record<string, string | Uint8Array> = {},
) {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(trailers)) {
    metadata.set(key, typeof value === "string" ? value : Buffer.from(value));
  }
  return Object.assign(new Error(details), { code, details, metadata });
}

Deno.test("errors: the server's reason becomes the code; the detail and retry hint are decoded", () => {
  const detail = MismatchedDevices.encode({
    missingDevices: [{ accountId: "a", deviceId: "d1" }],
    extraDevices: [],
    staleDevices: [{ accountId: "a", deviceId: "d2" }],
  }).finish();
  const mismatch = fromServiceError(
    serviceError(grpc.status.FAILED_PRECONDITION, "devices differ", {
      "guardyn-error-reason": "MISMATCHED_DEVICES",
      "guardyn-error-detail-bin": detail,
    }),
  );
  assertEquals(mismatch.code, "MISMATCHED_DEVICES");
  assertEquals(mismatch.message, "devices differ");
  assertEquals(mismatch.details.status, grpc.status.FAILED_PRECONDITION);
  assertEquals(mismatch.details.mismatch?.staleDevices, [{ accountId: "a", deviceId: "d2" }]);
  const limited = fromServiceError(serviceError(grpc.status.RESOURCE_EXHAUSTED, "slow down", {
    "guardyn-error-reason": "RATE_LIMITED",
    "guardyn-retry-after-ms": "1500",
  }));
  assertEquals([limited.code, limited.details.retryAfterMs, limited.retryable], [
    "RATE_LIMITED",
    1500,
    true,
  ]);
});

Deno.test("errors: without a reason the status code decides; garbage reasons are ignored", () => {
  assertEquals(
    fromServiceError(serviceError(grpc.status.UNAVAILABLE, "no connection")).code,
    "UNAVAILABLE",
  );
  assertEquals(
    fromServiceError(serviceError(grpc.status.DEADLINE_EXCEEDED, "slow")).code,
    "DEADLINE_EXCEEDED",
  );
  assertEquals(
    fromServiceError(
      serviceError(grpc.status.INTERNAL, "x", { "guardyn-error-reason": "not a reason!" }),
    ).code,
    "UNKNOWN_SERVER_ERROR",
  );
  assertEquals(fromServiceError(new Error("boom")).code, "UNKNOWN_SERVER_ERROR");
  const typed = new GuardynClientError("BAD_INPUT", "x");
  assertEquals(fromServiceError(typed), typed);
  assertEquals(typed.retryable, false);
});
