/**
 * The new device's wait for its provisioning blob (AuthService.WaitProvisioning, a server
 * stream): reconnects while the session lives, since a waiter that reconnects gets the blob
 * again until the token is used.
 */

import type { WaitProvisioningResponse } from "../proto/gen/guardyn/v1/auth.ts";
import { Backoff, sleep } from "./backoff.ts";
import { fromServiceError, GuardynClientError } from "./errors.ts";
import type { Transport } from "./transport.ts";

export async function waitForProvisioning(
  transport: Transport,
  session: { sessionId: string; waitSecret: Uint8Array; expiresAtMs: number },
  signal: AbortSignal,
  now: () => number = Date.now,
): Promise<WaitProvisioningResponse> {
  const backoff = new Backoff({ baseMs: 250, capMs: 5_000 });
  for (;;) {
    if (signal.aborted) throw new GuardynClientError("CANCELLED", "linking was cancelled");
    if (now() >= session.expiresAtMs) {
      throw new GuardynClientError("EXPIRED", "the link code expired before it was used");
    }
    try {
      return await firstMessage(transport, session, signal);
    } catch (error) {
      const failure = error instanceof GuardynClientError ? error : fromServiceError(error);
      if (!failure.retryable || signal.aborted) throw failure;
      await sleep(backoff.next(), signal).catch(() => {});
    }
  }
}

function firstMessage(
  transport: Transport,
  session: { sessionId: string; waitSecret: Uint8Array; expiresAtMs: number },
  signal: AbortSignal,
): Promise<WaitProvisioningResponse> {
  return new Promise((resolve, reject) => {
    const call = transport.auth.waitProvisioning(
      { sessionId: session.sessionId, waitSecret: session.waitSecret },
      { deadline: session.expiresAtMs + 5_000 },
    );
    let received: WaitProvisioningResponse | undefined;
    const onAbort = () => call.cancel();
    signal.addEventListener("abort", onAbort, { once: true });
    call.on("data", (message: WaitProvisioningResponse) => {
      received ??= message;
    });
    call.on("error", (error) => {
      signal.removeEventListener("abort", onAbort);
      if (received) resolve(received);
      else reject(fromServiceError(error));
    });
    call.on("end", () => {
      signal.removeEventListener("abort", onAbort);
      if (received) resolve(received);
      else reject(new GuardynClientError("UNAVAILABLE", "the provisioning stream ended early"));
    });
  });
}
