/**
 * Push end to end against a real Web Push service: web-push-testing (RFC 8030) on 127.0.0.1
 * behind TLS with a test CA, which checks the VAPID JWT and decrypts the aes128gcm payload.
 * On both stacks (embedded; Cassandra + JetStream with two instances sharing the dispatcher):
 * a connected device gets no push, an offline one exactly one per burst, the payload says
 * nothing but "wake", an incoming call wakes even inside the coalescing window, and an expired
 * subscription is removed from the store.
 */

import { assert, assertEquals } from "../assert.ts";
import { type Backend } from "../support/platform.ts";
import { NO_SANITIZERS, sleep, waitUntil } from "../support/wait.ts";
import { startWebPushService, type WebPushService } from "../support/web_push_service.ts";
import { toBase64Url } from "../../services/platform/base64url.ts";
import { p256 } from "@noble/curves/nist.js";
import {
  bodies,
  registered,
  startWorld,
  type TestClient,
  type World,
  WORLD_SERVICES,
} from "./e2e_test_kit.ts";
import "../../services/store/push_ports.ts";

const GRACE_MS = 1_500;
/** Longer than the grace and the bus hop: enough to see that nothing more arrives. */
const QUIET_MS = GRACE_MS + 1_500;
const WAKE = { v: 1, type: "wake" };

interface Setup {
  world: World;
  push: WebPushService;
}

function pushSuite(backend: Backend) {
  let running: Promise<Setup> | undefined;
  const setup = () =>
    running ??= (async () => {
      const push = await startWebPushService();
      const world = await startWorld(backend, {
        PUSH_CA_FILE: push.caFile,
        PUSH_ALLOW_PRIVATE_ENDPOINTS: "true",
        PUSH_GRACE_MS: String(GRACE_MS),
        PUSH_COALESCE_SECONDS: "600",
        // Every instance signs with one key (cluster); the embedded one makes its own file.
        ...(backend === "cluster"
          ? { VAPID_PRIVATE_KEY: toBase64Url(p256.utils.randomSecretKey()) }
          : {}),
      }, [...WORLD_SERVICES, "notification"]);
      return { world, push };
    })();
  const test = (name: string, fn: (s: Setup) => Promise<void>) =>
    Deno.test({
      name: `e2e push (${backend}): ${name}`,
      ...NO_SANITIZERS,
      fn: async () => fn(await setup()),
    });

  /** A device registered with a fresh subscription of the push service. */
  async function subscribed(s: Setup, name: string) {
    const handle = await registered(s.world, name);
    const settings = await handle.client.pushSettings();
    assertEquals(settings.platforms, ["web-push", "unified-push"]);
    const { subscription, clientHash } = await s.push.subscribe(settings.vapidPublicKey);
    await handle.client.registerPush({ platform: "web-push", subscription });
    return { handle, clientHash };
  }

  const idOf = (handle: TestClient) => handle.client.account!.accountId;

  test("online: no push; offline: exactly one content-free push per burst", async (s) => {
    const alice = await registered(s.world, "alice");
    const { handle: bob, clientHash } = await subscribed(s, "bob");
    const [registration] = await bob.client.pushRegistrations();
    assertEquals(registration?.platform, "web-push");

    await alice.client.sendText(idOf(bob), "while you are here");
    await waitUntil(() => bodies(bob, idOf(alice)).length === 1, "bob reads it live");
    await sleep(QUIET_MS);
    assertEquals(await s.push.notifications(clientHash), [], "a connected device is not pushed");

    await bob.client.close();
    const secret = `marker-${crypto.randomUUID()}`;
    for (let i = 0; i < 3; i++) await alice.client.sendText(idOf(bob), `${secret} ${i}`);
    await waitUntil(
      async () => (await s.push.notifications(clientHash)).length > 0,
      "the push service got a push",
      15_000,
    );
    await sleep(QUIET_MS);
    const received = await s.push.notifications(clientHash);
    assertEquals(received.length, 1, "one push for the burst");
    // web-push-testing decrypted it with the subscription's keys: this is all a push says.
    assertEquals(JSON.parse(received[0]!), WAKE);
    for (const leak of [secret, idOf(alice), "alice", idOf(bob)]) {
      assert(!received[0]!.includes(leak), `the push carries no ${leak}`);
    }

    // The woken device connects and finds its mail.
    const back = await s.world.reopen(bob);
    back.client.connect();
    await waitUntil(() => bodies(back, idOf(alice)).length === 4, "bob reads the burst");
    const [delivered] = await back.client.pushRegistrations();
    assert(delivered!.lastDeliveredAtMs > 0, "the accepted push is noted");
  });

  test("an incoming call wakes an offline device even inside the coalescing window", async (s) => {
    const alice = await registered(s.world, "alice");
    const { handle: bob, clientHash } = await subscribed(s, "bob");
    await bob.client.close();
    await alice.client.sendText(idOf(bob), "first");
    await waitUntil(async () => (await s.push.notifications(clientHash)).length === 1, "pushed");
    await alice.client.sendText(idOf(bob), "second, coalesced");
    await sleep(QUIET_MS);
    assertEquals((await s.push.notifications(clientHash)).length, 1, "coalesced");
    await alice.client.startCall(idOf(bob), { sdp: "v=0 offer", media: "audio" });
    await waitUntil(
      async () => (await s.push.notifications(clientHash)).length === 2,
      "the call wakes bob",
      15_000,
    );
    assertEquals(JSON.parse((await s.push.notifications(clientHash))[1]!), WAKE);
  });

  test("an expired subscription is removed from the store", async (s) => {
    const alice = await registered(s.world, "alice");
    const { handle: carol, clientHash } = await subscribed(s, "carol");
    const device = { accountId: idOf(carol), deviceId: carol.client.account!.deviceId };
    await carol.client.close();
    await s.push.expire(clientHash);
    const store = s.world.instances[0]!.platform.deps.store;
    assert(await store.push.get(device), "registered before");
    await alice.client.sendText(device.accountId, "anyone there?");
    await waitUntil(
      async () => (await store.push.get(device)) === undefined,
      "410 Gone removes the registration",
      15_000,
    );
    assertEquals(await s.push.notifications(clientHash), []);
  });

  Deno.test({
    name: `e2e push (${backend}): stop`,
    ...NO_SANITIZERS,
    fn: async () => {
      if (!running) return;
      const { world, push } = await running;
      await world.stop();
      await push.stop();
    },
  });
}

pushSuite("embedded");
pushSuite("cluster");
