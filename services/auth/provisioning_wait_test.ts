/**
 * WaitProvisioning (audit finding 7): one waiter per session, a cap on open waits per client
 * address, and a wake-up through the bus instead of polling the store. Before the fix a wait
 * read the store four times a second, and 300 concurrent waits on one session were accepted.
 */

import * as grpc from "@grpc/grpc-js";
import { assert, assertEquals } from "../../tests/assert.ts";
import { clients, register, withAuthService } from "../../tests/support/accounts_test_kit.ts";
import { collect, failure, unary } from "../../tests/support/grpc.ts";
import type { TestPlatform } from "../../tests/support/platform.ts";
import { NO_SANITIZERS, sleep } from "../../tests/support/wait.ts";

type Clients = ReturnType<typeof clients>;

function withAuth(fn: (c: Clients, platform: TestPlatform) => Promise<void>) {
  return withAuthService({ PROVISIONING_WAITS_PER_ADDRESS: "2" }, fn);
}

const openSession = (c: Clients) => unary(c.auth.createProvisioningSession.bind(c.auth), {});

const wait = (c: Clients, session: { sessionId: string; waitSecret: Uint8Array }) =>
  c.auth.waitProvisioning({ sessionId: session.sessionId, waitSecret: session.waitSecret });

Deno.test({
  name: "provisioning wait: woken through the bus, not by polling the store",
  ...NO_SANITIZERS,
  fn: () =>
    withAuth(async (c, platform) => {
      const provisioning = platform.platform.deps.store.auth.provisioning;
      const read = provisioning.get.bind(provisioning);
      let reads = 0;
      provisioning.get = (...args) => {
        reads++;
        return read(...args);
      };
      const session = await openSession(c);
      const received = collect(wait(c, session));
      await sleep(1_500);
      // The check on entry and one read before sleeping; polling read every 250 ms.
      assert(reads <= 2, `the store was read ${reads} times while nothing happened`);
      const sender = await register(c);
      await unary(c.auth.sendProvisioning.bind(c.auth), {
        sessionId: session.sessionId,
        sealedBlob: new Uint8Array([1, 2, 3]),
      }, sender.accessToken);
      const [message] = await received;
      assertEquals([...message!.sealedBlob], [1, 2, 3]);
    }),
});

Deno.test({
  name: "provisioning wait: a newer wait on the session replaces the older one",
  ...NO_SANITIZERS,
  fn: () =>
    withAuth(async (c) => {
      const session = await openSession(c);
      const first = failure(collect(wait(c, session)));
      await sleep(200);
      const second = collect(wait(c, session));
      const replaced = await first;
      assertEquals([replaced.code, replaced.reason], [grpc.status.ABORTED, "ALREADY_EXISTS"]);
      const sender = await register(c);
      await unary(c.auth.sendProvisioning.bind(c.auth), {
        sessionId: session.sessionId,
        sealedBlob: new Uint8Array([9]),
      }, sender.accessToken);
      assertEquals((await second).length, 1);
    }),
});

Deno.test({
  name: "provisioning wait: open waits per client address are capped",
  ...NO_SANITIZERS,
  fn: () =>
    withAuth(async (c) => {
      const calls = [];
      for (let i = 0; i < 2; i++) calls.push(wait(c, await openSession(c)));
      const ended = calls.map((call) => collect(call).catch(() => []));
      await sleep(200);
      const refused = await failure(collect(wait(c, await openSession(c))));
      assertEquals([refused.code, refused.reason], [
        grpc.status.RESOURCE_EXHAUSTED,
        "RATE_LIMITED",
      ]);
      for (const call of calls) call.cancel();
      await Promise.all(ended);
      // A cancelled wait frees its place: the next one is held open, not refused.
      const freed = wait(c, await openSession(c));
      const outcome = failure(collect(freed));
      await sleep(200);
      freed.cancel();
      assertEquals((await outcome).code, grpc.status.CANCELLED);
    }),
});
