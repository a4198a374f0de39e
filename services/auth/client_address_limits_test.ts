/**
 * Per-address limits behind a proxy (audit finding 2): x-forwarded-for names the client only
 * when the TCP peer is a trusted proxy; from anyone else it is ignored. Before the fix, every
 * client behind the ingress shared the ingress's bucket.
 */

import * as grpc from "@grpc/grpc-js";
import { assertEquals } from "../../tests/assert.ts";
import { clients, withAuthService } from "../../tests/support/accounts_test_kit.ts";
import { NO_SANITIZERS } from "../../tests/support/wait.ts";

/** Opens a linking session as `forwardedFor`; the gRPC status code (0 when it was accepted). */
function openSession(c: ReturnType<typeof clients>, forwardedFor: string): Promise<number> {
  const metadata = new grpc.Metadata();
  metadata.set("x-forwarded-for", forwardedFor);
  return new Promise((resolve) =>
    c.auth.createProvisioningSession({}, metadata, (error) => resolve(error?.code ?? 0))
  );
}

function withServer(trustedProxies: string, fn: (c: ReturnType<typeof clients>) => Promise<void>) {
  return withAuthService({
    REGISTRATION_BURST: "1",
    REGISTRATIONS_PER_MINUTE: "1",
    ...(trustedProxies ? { TRUSTED_PROXY_CIDRS: trustedProxies } : {}),
  }, fn);
}

Deno.test({
  name: "client address: behind a trusted proxy each client has its own bucket",
  ...NO_SANITIZERS,
  fn: () =>
    withServer("127.0.0.0/8", async (c) => {
      assertEquals(await openSession(c, "203.0.113.1"), 0);
      assertEquals(await openSession(c, "203.0.113.2"), 0);
      assertEquals(
        await openSession(c, "198.51.100.7, 203.0.113.1"),
        grpc.status.RESOURCE_EXHAUSTED,
      );
    }),
});

Deno.test({
  name: "client address: a spoofed x-forwarded-for from an untrusted peer changes nothing",
  ...NO_SANITIZERS,
  fn: () =>
    withServer("", async (c) => {
      assertEquals(await openSession(c, "203.0.113.1"), 0);
      assertEquals(await openSession(c, "203.0.113.2"), grpc.status.RESOURCE_EXHAUSTED);
    }),
});
