/**
 * Presence through the SDK, on both stacks (two instances in cluster mode): the grant travels
 * inside an end-to-end encrypted message (the server stores only its hash), the watcher sees
 * changes live, a third account sees nothing, and a withdrawn grant hides the owner at once.
 */

import { assert, assertEquals } from "../assert.ts";
import { type Backend } from "../support/platform.ts";
import { NO_SANITIZERS, waitUntil } from "../support/wait.ts";
import {
  registered,
  startWorld,
  type TestClient,
  type World,
  WORLD_SERVICES,
} from "./e2e_test_kit.ts";
import type { PresenceInfo } from "../../client/mod.ts";

function presenceSuite(backend: Backend) {
  let running: Promise<World> | undefined;
  const setup = () =>
    running ??= startWorld(backend, {
      PRESENCE_ONLINE_WINDOW_MS: "4000",
      PRESENCE_HEARTBEAT_INTERVAL_MS: "1000",
    }, [...WORLD_SERVICES, "presence"]);
  const test = (name: string, fn: (world: World) => Promise<void>) =>
    Deno.test({
      name: `e2e presence (${backend}): ${name}`,
      ...NO_SANITIZERS,
      fn: async () => fn(await setup()),
    });
  const idOf = (handle: TestClient) => handle.client.account!.accountId;

  test("a grant in an E2EE message, live changes, nothing for others, withdrawal", async (world) => {
    const alice = await registered(world, "alice", { instance: 0 });
    const bob = await registered(world, "bob", { instance: 1 });
    const carol = await registered(world, "carol", { instance: 0 });
    await alice.client.allowPresence(idOf(bob));
    await waitUntil(
      () => bob.events.some((e) => e.type === "presence-granted" && e.peer === idOf(alice)),
      "bob gets the grant",
    );
    assertEquals(bob.client.presenceGrants(), [{ accountId: idOf(alice), lastSeen: false }]);

    const seen: PresenceInfo[] = [];
    const watch = await bob.client.watchPresence([idOf(alice)], (p) => seen.push(p));
    await waitUntil(() => seen.length >= 1, "snapshot");
    const stop = alice.client.startPresence();
    await waitUntil(() => seen.at(-1)?.status === "online", "alice online");
    await alice.client.setPresence("busy", "focus time");
    await waitUntil(() => seen.at(-1)?.customText === "focus time", "the change arrives");
    assertEquals(seen.at(-1)?.status, "busy");

    // Carol got no capability: Alice reads exactly like an account that does not exist.
    const [forCarol] = await carol.client.presenceOf([idOf(alice)]);
    assertEquals(forCarol, {
      accountId: idOf(alice),
      status: "offline",
      customText: "",
      lastSeenMs: 0,
    });

    assert(await alice.client.disallowPresence(idOf(bob)));
    await waitUntil(() => seen.at(-1)?.status === "offline", "hidden at once");
    assertEquals(seen.at(-1), {
      accountId: idOf(alice),
      status: "offline",
      customText: "",
      lastSeenMs: 0,
    });
    await waitUntil(
      () => bob.events.some((e) => e.type === "presence-withdrawn" && e.peer === idOf(alice)),
      "bob is told",
    );
    assertEquals(bob.client.presenceGrants(), []);
    stop();
    watch.close();
  });

  test("last seen only with a last-seen grant, after the server expires the account", async (world) => {
    const alice = await registered(world, "alice2", { instance: 1 });
    const dave = await registered(world, "dave", { instance: 0 });
    await alice.client.allowPresence(idOf(dave), { lastSeen: true });
    await waitUntil(() => dave.client.presenceGrants().length === 1, "dave gets the grant");
    const seen: PresenceInfo[] = [];
    const watch = await dave.client.watchPresence([idOf(alice)], (p) => seen.push(p));
    const stop = alice.client.startPresence();
    await waitUntil(() => seen.at(-1)?.status === "online", "alice online");
    const stoppedAt = Date.now();
    stop();
    await waitUntil(() => seen.at(-1)?.status === "offline", "expired by the server", 15_000);
    const lastSeen = seen.at(-1)!.lastSeenMs;
    assertEquals(lastSeen % 60_000, 0);
    assert(lastSeen > 0 && lastSeen <= stoppedAt && stoppedAt - lastSeen < 60_000 + 4_000);
    watch.close();
  });

  Deno.test({
    name: `e2e presence (${backend}): stop`,
    ...NO_SANITIZERS,
    fn: async () => {
      if (running) await (await running).stop();
    },
  });
}

presenceSuite("embedded");
presenceSuite("cluster");
