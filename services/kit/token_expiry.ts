/**
 * When the access token of a call expires, read from its (already verified) JWT, so a Receive
 * stream can end with Closed{TOKEN_EXPIRED} at that moment instead of living on unauthenticated.
 */

import type * as grpc from "@grpc/grpc-js";

export function accessTokenExpiryMs(metadata: grpc.Metadata): number | undefined {
  const value = metadata.get("authorization")[0];
  if (typeof value !== "string") return undefined;
  const payload = /^Bearer [^.]+\.([^.]+)\.[^.]+$/.exec(value)?.[1];
  if (!payload) return undefined;
  try {
    const json = atob(payload.replaceAll("-", "+").replaceAll("_", "/"));
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === "number" && Number.isSafeInteger(exp) && exp > 0 ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
