import { assert, assertEquals } from "../tests/assert.ts";
import { Api } from "./api.ts";
import { GuardynClientError } from "./errors.ts";
import { errorCode } from "./test_support.ts";
import { TokenKeeper } from "./tokens.ts";
import type { Transport, UnaryMethod } from "./transport.ts";

/** A transport whose unary calls answer from a script of results. */
function scripted(results: (string | GuardynClientError)[]) {
  const seen: (string | undefined)[] = [];
  const transport = {
    closed: false,
    unary(_method: unknown, _request: unknown, token?: string) {
      seen.push(token);
      const next = results.shift();
      if (next === undefined) return Promise.reject(new Error("script exhausted"));
      return next instanceof GuardynClientError ? Promise.reject(next) : Promise.resolve(next);
    },
  } as unknown as Transport;
  return { transport, seen };
}

const method = (() => {}) as unknown as UnaryMethod<object, string>;
const fail = (code: ConstructorParameters<typeof GuardynClientError>[0]) =>
  new GuardynClientError(code, code);

function tokens() {
  let n = 1;
  const keeper = new TokenKeeper({
    refresh: () =>
      Promise.resolve({
        accessToken: `access-${++n}`,
        accessExpiresAtMs: Date.now() + 900_000,
        refreshToken: `refresh-${n}`,
        refreshExpiresAtMs: Date.now() + 86_400_000,
      }),
    onRotated: () => Promise.resolve(),
  });
  keeper.set({
    accessToken: "access-1",
    accessExpiresAtMs: Date.now() + 900_000,
    refreshToken: "refresh-1",
    refreshExpiresAtMs: Date.now() + 86_400_000,
    receivedAtMs: Date.now(),
  });
  return keeper;
}

const fast = { baseMs: 1, capMs: 2 };

Deno.test("api: idempotent calls are retried on transient failures, others are not", async () => {
  const retried = scripted([fail("UNAVAILABLE"), fail("RATE_LIMITED"), "ok"]);
  const api = new Api(retried.transport, tokens(), { backoff: fast });
  assertEquals(await api.authed(method, {}, { idempotent: true }), "ok");
  assertEquals(retried.seen, ["access-1", "access-1", "access-1"]);

  const once = scripted([fail("UNAVAILABLE"), "ok"]);
  const strict = new Api(once.transport, tokens(), { backoff: fast });
  assertEquals(
    await errorCode(() => strict.public(method, {}, { idempotent: false })),
    "UNAVAILABLE",
  );
  assertEquals(once.seen, [undefined]);

  const final = scripted([fail("INVALID_ARGUMENT"), "ok"]);
  const noRetry = new Api(final.transport, tokens(), { backoff: fast });
  assertEquals(
    await errorCode(() => noRetry.authed(method, {}, { idempotent: true })),
    "INVALID_ARGUMENT",
  );

  const down = scripted(Array.from({ length: 10 }, () => fail("UNAVAILABLE")));
  const giveUp = new Api(down.transport, tokens(), { backoff: fast, maxAttempts: 3 });
  assertEquals(
    await errorCode(() => giveUp.authed(method, {}, { idempotent: true })),
    "UNAVAILABLE",
  );
  assertEquals(down.seen.length, 3);
  // The time budget ends retries too.
  const slow = scripted(Array.from({ length: 100 }, () => fail("UNAVAILABLE")));
  const budget = new Api(slow.transport, tokens(), {
    backoff: { baseMs: 40, capMs: 40 },
    retryForMs: 100,
  });
  const started = Date.now();
  assertEquals(
    await errorCode(() => budget.authed(method, {}, { idempotent: true })),
    "UNAVAILABLE",
  );
  const elapsed = Date.now() - started;
  assert(elapsed < 400 && slow.seen.length < 100, `${slow.seen.length} attempts in ${elapsed} ms`);
});

Deno.test("api: an expired token is renewed once and the call repeated with the new one", async () => {
  const script = scripted([fail("TOKEN_EXPIRED"), "ok"]);
  const api = new Api(script.transport, tokens(), { backoff: fast });
  assertEquals(await api.authed(method, {}, { idempotent: false }), "ok");
  assertEquals(script.seen, ["access-1", "access-2"]);
});

Deno.test("api: a revoked device is reported", async () => {
  let revoked = 0;
  const script = scripted([fail("DEVICE_REVOKED")]);
  const api = new Api(script.transport, tokens(), { backoff: fast, onRevoked: () => revoked++ });
  assertEquals(
    await errorCode(() => api.authed(method, {}, { idempotent: true })),
    "DEVICE_REVOKED",
  );
  assertEquals(revoked, 1);
});
