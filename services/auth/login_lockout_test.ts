/**
 * Targeted lockout (audit finding 3): failures count per (username, client address) and per
 * address; failures per username only slow down addresses that have failed. Before the fix,
 * five failed logins from anywhere locked the owner out, whatever address they came from.
 * Client addresses are set through x-forwarded-for from a trusted proxy (127.0.0.0/8).
 */

import * as grpc from "@grpc/grpc-js";
import { assertEquals } from "../../tests/assert.ts";
import {
  clients,
  PASSWORD,
  register,
  registration,
  uniqueUsername,
  withAuthService,
} from "../../tests/support/accounts_test_kit.ts";
import { NO_SANITIZERS } from "../../tests/support/wait.ts";

type Clients = ReturnType<typeof clients>;

/** Logs in as `username` from `address`; the error reason, or "OK". */
function loginFrom(c: Clients, address: string, username: string, password: string) {
  const metadata = new grpc.Metadata();
  metadata.set("x-forwarded-for", address);
  return new Promise<string>((resolve) =>
    c.auth.login(
      { username, password, device: registration(), deviceId: "" },
      metadata,
      (error) => {
        const reason = error?.metadata?.get("guardyn-error-reason")[0];
        resolve(error ? String(reason ?? error.code) : "OK");
      },
    )
  );
}

function withAuth(env: Record<string, string>, fn: (c: Clients) => Promise<void>) {
  return withAuthService({
    TRUSTED_PROXY_CIDRS: "127.0.0.0/8",
    LOGIN_FAILURES_BURST: "5",
    // One token a minute: nothing refills while a test runs, however slow the machine.
    LOGIN_FAILURES_PER_MINUTE: "1",
    LOGIN_ADDRESS_FAILURES_PER_MINUTE: "1",
    LOGIN_USERNAME_FAILURES_PER_MINUTE: "1",
    ...env,
  }, fn);
}

const WRONG = "not the password!";

Deno.test({
  name: "login lockout: failures from one address do not lock the owner out elsewhere",
  ...NO_SANITIZERS,
  fn: () =>
    withAuth({}, async (c) => {
      const alice = await register(c);
      for (let i = 0; i < 5; i++) {
        assertEquals(
          await loginFrom(c, "203.0.113.1", alice.username, WRONG),
          "INVALID_CREDENTIALS",
        );
      }
      assertEquals(await loginFrom(c, "203.0.113.1", alice.username, PASSWORD), "RATE_LIMITED");
      assertEquals(await loginFrom(c, "198.51.100.2", alice.username, PASSWORD), "OK");
    }),
});

Deno.test({
  name: "login lockout: an address that fails across many usernames is limited",
  ...NO_SANITIZERS,
  fn: () =>
    withAuth({ LOGIN_ADDRESS_FAILURES_BURST: "6" }, async (c) => {
      const reasons = [];
      for (let i = 0; i < 7; i++) {
        reasons.push(await loginFrom(c, "203.0.113.9", uniqueUsername("x"), WRONG));
      }
      assertEquals(reasons.at(-1), "RATE_LIMITED");
      assertEquals(reasons.slice(0, 6).every((r) => r === "INVALID_CREDENTIALS"), true);
    }),
});

Deno.test({
  name:
    "login lockout: a username under attack slows failed addresses, not clean ones; names leak nothing",
  ...NO_SANITIZERS,
  fn: () =>
    withAuth({ LOGIN_FAILURES_BURST: "2", LOGIN_USERNAME_FAILURES_BURST: "4" }, async (c) => {
      const alice = await register(c);
      const ghost = uniqueUsername("ghost");
      const attack = async (username: string) => {
        const seen = [];
        for (const address of ["203.0.113.1", "203.0.113.1", "203.0.113.2", "203.0.113.2"]) {
          seen.push(await loginFrom(c, address, username, WRONG));
        }
        // An address that failed before (for another name) is slowed with a retry hint.
        seen.push(await loginFrom(c, "203.0.113.3", uniqueUsername("y"), WRONG));
        seen.push(await loginFrom(c, "203.0.113.3", username, WRONG));
        return seen;
      };
      const forAlice = await attack(alice.username);
      assertEquals(forAlice, [
        "INVALID_CREDENTIALS",
        "INVALID_CREDENTIALS",
        "INVALID_CREDENTIALS",
        "INVALID_CREDENTIALS",
        "INVALID_CREDENTIALS",
        "RATE_LIMITED",
      ]);
      // The same answers for a name that does not exist.
      assertEquals(await attack(ghost), forAlice.map((r) => r));
      // An address that has not failed still gets to try the owner's password.
      assertEquals(await loginFrom(c, "192.0.2.77", alice.username, PASSWORD), "OK");
    }),
});
