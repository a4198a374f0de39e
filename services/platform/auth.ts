/**
 * The authentication seam of the gRPC server kit. The kit extracts the bearer token from the
 * `authorization` metadata of every non-public call and hands it to an `Authenticator`; the auth
 * service provides the real one (JWT verification), tests may provide their own.
 */

import type * as grpc from "@grpc/grpc-js";
import { unauthenticated } from "./errors.ts";

export interface AuthContext {
  accountId: string;
  deviceId: string;
  /** The login (refresh-token family) the access token belongs to, when it names one. */
  familyId?: string;
}

export interface Authenticator {
  /** Verifies an access token; throws a GuardynError (UNAUTHENTICATED) when it is not valid. */
  verify(token: string): Promise<AuthContext>;
}

/** Tokens are bounded so a huge header cannot cost verification time. */
export const MAX_TOKEN_LENGTH = 4096;

/** The bearer token of a call, or a clear UNAUTHENTICATED error. */
export function bearerToken(metadata: grpc.Metadata): string {
  const values = metadata.get("authorization");
  if (values.length === 0) {
    throw unauthenticated("TOKEN_MISSING", "missing authorization metadata (Bearer <token>)");
  }
  if (values.length > 1) {
    throw unauthenticated("TOKEN_INVALID", "more than one authorization metadata value");
  }
  const value = values[0];
  if (typeof value !== "string" || value.length > MAX_TOKEN_LENGTH + 7) {
    throw unauthenticated(
      "TOKEN_INVALID",
      `authorization must be a Bearer token of at most ${MAX_TOKEN_LENGTH} characters`,
    );
  }
  const match = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(value);
  if (!match?.[1]) {
    throw unauthenticated("TOKEN_INVALID", 'authorization must be "Bearer <token>"');
  }
  return match[1];
}

/** An authenticator that refuses everything: the safe default until a real one is wired. */
export const denyAll: Authenticator = {
  verify: () =>
    Promise.reject(unauthenticated("TOKEN_INVALID", "no authenticator configured for this server")),
};
