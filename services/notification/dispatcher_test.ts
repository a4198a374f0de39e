/** The dispatcher's decisions with in-memory fakes and an instant clock (no I/O, no waits). */

import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { memoryLogger } from "../platform/log.ts";
import type { BusEvent } from "../bus/subjects.ts";
import type { DeviceRef } from "../store/ports.ts";
import type { PushRegistration, PushStore } from "../store/push_ports.ts";
import { type DispatchOutcome, PushDispatcher } from "./dispatcher.ts";
import type { SendOutcome, Wake } from "./wake.ts";

const BOB: DeviceRef = { accountId: "bob", deviceId: "phone" };

function fakes(options: { pending?: number; outcome?: SendOutcome } = {}) {
  let now = 1_000_000;
  const rows = new Map<string, PushRegistration>();
  const key = (d: DeviceRef) => `${d.accountId}/${d.deviceId}`;
  const push: PushStore = {
    put: (r) => Promise.resolve(void rows.set(key(r.device), r)),
    get: (d) => Promise.resolve(rows.get(key(d))),
    list: (a) => Promise.resolve([...rows.values()].filter((r) => r.device.accountId === a)),
    remove: (d, onlyToken) => {
      const row = rows.get(key(d));
      if (!row || (onlyToken !== undefined && row.token !== onlyToken)) {
        return Promise.resolve(false);
      }
      return Promise.resolve(rows.delete(key(d)));
    },
    claim: (d, token, seenMs, atMs) => {
      const row = rows.get(key(d));
      if (row?.token !== token || row.lastDeliveredAtMs !== seenMs) return Promise.resolve(false);
      row.lastDeliveredAtMs = atMs;
      return Promise.resolve(true);
    },
    purgeAccount: (a) => {
      for (const [k, r] of rows) if (r.device.accountId === a) rows.delete(k);
      return Promise.resolve();
    },
  };
  const sent: Wake[] = [];
  /** Which sender sent each push, and to which token. */
  const sentBy: string[] = [];
  const outcomes: DispatchOutcome[] = [];
  const sleepers: (() => void)[] = [];
  const state = { pending: options.pending ?? 1, outcome: options.outcome ?? { kind: "accepted" } };
  const deps: ConstructorParameters<typeof PushDispatcher>[0] = {
    push,
    mailbox: { count: () => Promise.resolve(state.pending) },
    senders: Object.fromEntries(
      (["web-push", "unified-push"] as const).map((platform) => [platform, {
        send: (token: string, wake: Wake) => {
          sent.push(wake);
          sentBy.push(`${platform}:${token}`);
          return Promise.resolve(state.outcome as SendOutcome);
        },
      }]),
    ),
    graceMs: 1_500,
    coalesceMs: 60_000,
    now: () => now,
    // The grace period ends when the test opens the gate.
    sleep: (ms) =>
      new Promise((resolve) => {
        sleepers.push(() => {
          now += ms;
          resolve();
        });
      }),
    log: memoryLogger("info"),
    count: (o) => outcomes.push(o),
  };
  const dispatcher = new PushDispatcher(deps);
  /** Another instance's dispatcher over the same store. */
  const second = new PushDispatcher(deps);
  const register = (token = "sub-1") =>
    push.put({
      device: BOB,
      platform: "web-push",
      token,
      appId: "",
      registeredAtMs: now,
      lastDeliveredAtMs: 0,
    });
  const written = (urgent = false, on = dispatcher) =>
    on.handle({
      event: {
        kind: "mailbox.written",
        ...BOB,
        count: 1,
        atMs: now,
        ...(urgent ? { urgent: true as const } : {}),
      } as BusEvent,
      deliveryCount: 1,
    });
  /** Ends the grace period of the decision under way (waits until it started). */
  const graceOver = async (decisions = 1) => {
    while (sleepers.length < decisions) await new Promise((resolve) => setTimeout(resolve, 0));
    for (const wake of sleepers.splice(0)) wake();
  };
  const advance = (ms: number) => (now += ms);
  return {
    push,
    sent,
    sentBy,
    outcomes,
    state,
    register,
    written,
    graceOver,
    advance,
    dispatcher,
    second,
  };
}

Deno.test("dispatcher: a burst for an offline device becomes one push", async () => {
  const f = fakes();
  await f.register();
  const first = f.written();
  while (f.dispatcher.waiting === 0) await new Promise((r) => setTimeout(r, 0));
  await Promise.all([f.written(), f.written()]); // joined: acknowledged at once
  assertEquals(f.dispatcher.waiting, 1);
  await f.graceOver();
  await first;
  assertEquals(f.sent, [{ urgent: false }]);
  assertEquals(f.outcomes, ["pushed"]);
  assertEquals((await f.push.get(BOB))!.lastDeliveredAtMs > 0, true);
});

Deno.test("dispatcher: mail taken within the grace period means online: no push", async () => {
  const f = fakes({ pending: 0 });
  await f.register();
  const done = f.written();
  await f.graceOver();
  await done;
  assertEquals([f.sent, f.outcomes], [[], ["online"]]);
});

Deno.test("dispatcher: within the window only an incoming call pushes again", async () => {
  const f = fakes();
  await f.register();
  let done = f.written();
  await f.graceOver();
  await done;
  f.advance(10_000);
  done = f.written();
  await f.graceOver();
  await done;
  done = f.written(true);
  await f.graceOver();
  await done;
  f.advance(61_000);
  done = f.written();
  await f.graceOver();
  await done;
  assertEquals(f.outcomes, ["pushed", "coalesced", "pushed", "pushed"]);
  assertEquals(f.sent.map((w) => w.urgent), [false, true, false]);
});

Deno.test("dispatcher: gone removes only the token it pushed to; retry throws for redelivery", async () => {
  const f = fakes({ outcome: { kind: "gone", status: 410 } });
  await f.register();
  let done = f.written();
  await f.graceOver();
  await done;
  assertEquals(await f.push.get(BOB), undefined);
  assertEquals(f.outcomes, ["gone"]);

  f.state.outcome = { kind: "retry", reason: "HTTP 503" };
  await f.register("sub-2");
  done = f.written();
  await f.graceOver();
  await assertRejects(() => done);
  const kept = await f.push.get(BOB);
  assertEquals(kept?.token, "sub-2", "kept for the next delivery");
  assertEquals(kept?.lastDeliveredAtMs, 0, "the claim was given back: the retry is not coalesced");
});

Deno.test("dispatcher: devices without a registration cost one read and no wait", async () => {
  const f = fakes();
  await f.written();
  assertEquals(f.outcomes, ["no_registration"]);
});

Deno.test("dispatcher: a revoked device and a deleted account lose their registrations", async () => {
  const f = fakes();
  await f.register();
  await f.dispatcher.handle({
    event: { kind: "device.revoked", ...BOB, atMs: 1 },
    deliveryCount: 1,
  });
  assertEquals(await f.push.get(BOB), undefined);
  await f.register();
  await f.dispatcher.handle({
    event: { kind: "account.deleted", accountId: BOB.accountId, atMs: 1 },
    deliveryCount: 1,
  });
  assertEquals(await f.push.list(BOB.accountId), []);
});

Deno.test("dispatcher: two instances deciding for one device at once push once", async () => {
  const f = fakes();
  await f.register();
  const both = Promise.all([f.written(false), f.written(false, f.second)]);
  await f.graceOver(2);
  await both;
  assertEquals(f.sent.length, 1);
  assertEquals(f.outcomes.toSorted(), ["coalesced", "pushed"]);
});

Deno.test("dispatcher: a registration replaced during the wait is pushed by its own sender", async () => {
  const f = fakes();
  await f.register("sub-1");
  const done = f.written();
  while (f.dispatcher.waiting === 0) await new Promise((r) => setTimeout(r, 0));
  await f.push.put({
    device: BOB,
    platform: "unified-push",
    token: "up-1",
    appId: "",
    registeredAtMs: 1,
    lastDeliveredAtMs: 0,
  });
  await f.graceOver();
  await done;
  assertEquals(f.sentBy, ["unified-push:up-1"]);
});
