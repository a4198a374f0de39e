import { assertEquals } from "../tests/assert.ts";
import { GuardynClientError } from "./errors.ts";
import { errorCode } from "./test_support.ts";
import { refreshMarginMs, TokenKeeper, type TokenPair } from "./tokens.ts";

function pair(n: number, now: number, ttlMs = 900_000): TokenPair {
  return {
    accessToken: `access-${n}`,
    accessExpiresAtMs: now + ttlMs,
    refreshToken: `refresh-${n}`,
    refreshExpiresAtMs: now + 30 * 86_400_000,
    receivedAtMs: now,
  };
}

function keeper(
  clock: { now: number },
  refresh: (token: string) => Promise<Omit<TokenPair, "receivedAtMs">>,
) {
  const rotated: TokenPair[] = [];
  const tokens = new TokenKeeper({
    refresh,
    onRotated: (p) => {
      rotated.push(p);
      return Promise.resolve();
    },
    now: () => clock.now,
  });
  return { tokens, rotated };
}

Deno.test("tokens: the margin is a quarter of the lifetime, between 1 s and 60 s", () => {
  assertEquals(refreshMarginMs(pair(1, 0, 900_000)), 60_000);
  assertEquals(refreshMarginMs(pair(1, 0, 40_000)), 10_000);
  assertEquals(refreshMarginMs(pair(1, 0, 2_000)), 1_000);
});

Deno.test("tokens: refreshed shortly before expiry, once for concurrent callers, persisted first", async () => {
  const clock = { now: 1_000_000 };
  let calls = 0;
  const { tokens, rotated } = keeper(clock, (refreshToken) => {
    calls++;
    assertEquals(refreshToken, "refresh-1");
    return Promise.resolve(pair(2, clock.now));
  });
  tokens.set(pair(1, clock.now));
  assertEquals(await tokens.accessToken(), "access-1");
  clock.now += 900_000 - 59_000; // inside the 60 s margin
  const got = await Promise.all([tokens.accessToken(), tokens.accessToken(), tokens.accessToken()]);
  assertEquals(got, ["access-2", "access-2", "access-2"]);
  assertEquals(calls, 1);
  assertEquals(rotated.map((p) => p.accessToken), ["access-2"]);
  assertEquals(rotated[0]!.receivedAtMs, clock.now);
});

Deno.test("tokens: renew refreshes only the token that was rejected", async () => {
  const clock = { now: 0 };
  let n = 1;
  const { tokens } = keeper(clock, () => Promise.resolve(pair(++n, clock.now)));
  tokens.set(pair(1, 0));
  assertEquals(await tokens.renew("access-1"), "access-2");
  // Another caller still holding the old token does not trigger a second refresh.
  assertEquals(await tokens.renew("access-1"), "access-2");
  assertEquals(n, 2);
});

Deno.test("tokens: an invalid refresh token means logging in again; none at all means signed out", async () => {
  const clock = { now: 0 };
  const { tokens } = keeper(
    clock,
    () => Promise.reject(new GuardynClientError("TOKEN_INVALID", "replayed")),
  );
  assertEquals(await errorCode(() => tokens.accessToken()), "NOT_SIGNED_IN");
  tokens.set(pair(1, 0, 1_000));
  assertEquals(await errorCode(() => tokens.renew("access-1")), "LOGIN_REQUIRED");
  const expired = keeper(clock, () => Promise.reject(new Error("not called")));
  expired.tokens.set({ ...pair(1, 0), refreshExpiresAtMs: -1, accessExpiresAtMs: 0 });
  assertEquals(await errorCode(() => expired.tokens.accessToken()), "LOGIN_REQUIRED");
  const down = keeper(clock, () => Promise.reject(new GuardynClientError("UNAVAILABLE", "down")));
  down.tokens.set(pair(1, 0, 1_000));
  assertEquals(await errorCode(() => down.tokens.renew("access-1")), "UNAVAILABLE");
});
