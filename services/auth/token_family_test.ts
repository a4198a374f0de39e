/**
 * Tokens after theft detection (audit finding 6): reusing a rotated refresh token revoked the
 * family, but the family's access tokens kept working up to 15 minutes, and rotation extended
 * a login forever. Access tokens now name their family and are refused once it is revoked;
 * a login lives at most SESSION_MAX_AGE_SECONDS across refreshes.
 */

import * as grpc from "@grpc/grpc-js";
import { assertEquals } from "../../tests/assert.ts";
import { login, register, withAuthService } from "../../tests/support/accounts_test_kit.ts";
import { failure, unary } from "../../tests/support/grpc.ts";
import { NO_SANITIZERS, sleep } from "../../tests/support/wait.ts";
import { familyStartedAtMs, newFamilyId } from "./session_tokens.ts";

const withAuth = withAuthService;

Deno.test("token family: ids carry their start; older ids have none", () => {
  assertEquals(familyStartedAtMs(newFamilyId(1_700_000_000_123)), 1_700_000_000_123);
  assertEquals(familyStartedAtMs(crypto.randomUUID()), undefined);
});

Deno.test({
  name: "token family: a reused refresh token stops the family's access tokens at once",
  ...NO_SANITIZERS,
  fn: () =>
    withAuth({}, async (c) => {
      const alice = await register(c);
      const refreshed = await unary(c.auth.refresh.bind(c.auth), {
        refreshToken: alice.refreshToken,
      });
      const fresh = refreshed.tokens!.accessToken;
      const list = (token: string) => unary(c.auth.listDevices.bind(c.auth), {}, token);
      assertEquals((await list(fresh)).devices.length, 1);
      // The old refresh token again: theft suspected.
      const reuse = await failure(
        unary(c.auth.refresh.bind(c.auth), { refreshToken: alice.refreshToken }),
      );
      assertEquals(reuse.reason, "TOKEN_INVALID");
      for (const token of [fresh, alice.accessToken]) {
        const refused = await failure(list(token));
        assertEquals([refused.code, refused.reason], [
          grpc.status.UNAUTHENTICATED,
          "TOKEN_INVALID",
        ]);
      }
      // The device itself is not revoked: its owner signs in again with the password.
      const again = await login(c, alice.username, "laptop", alice.deviceId);
      assertEquals((await list(again.accessToken)).devices.length, 1);
    }),
});

Deno.test({
  name: "token family: a login past SESSION_MAX_AGE_SECONDS needs the password again",
  ...NO_SANITIZERS,
  fn: () =>
    withAuth({ SESSION_MAX_AGE_SECONDS: "1" }, async (c) => {
      const alice = await register(c);
      await sleep(1_100);
      const expired = await failure(
        unary(c.auth.refresh.bind(c.auth), { refreshToken: alice.refreshToken }),
      );
      assertEquals([expired.code, expired.reason], [grpc.status.UNAUTHENTICATED, "TOKEN_EXPIRED"]);
      const again = await login(c, alice.username, "laptop", alice.deviceId);
      assertEquals(again.deviceId, alice.deviceId);
    }),
});
