/**
 * NotificationService end to end through gRPC-Web: on the embedded store (VAPID key created
 * beside the database) and on Cassandra + JetStream with two instances sharing
 * VAPID_PRIVATE_KEY (registered on one, listed and removed on the other).
 */
import * as grpc from "@grpc/grpc-js";
import { join } from "node:path";
import { p256 } from "@noble/curves/nist.js";
import { assert, assertEquals } from "../../tests/assert.ts";
import { failure, unary } from "../../tests/support/grpc.ts";
import { type Backend, startPlatform, type TestPlatform } from "../../tests/support/platform.ts";
import { webClient } from "../../tests/support/web.ts";
import { type Clients, clients, register } from "../../tests/support/accounts_test_kit.ts";
import { deleteStreams, NATS_URL } from "../bus/conformance/nats_server.ts";
import {
  NotificationServiceClient,
  NotificationServiceService,
  PushPlatform,
} from "../../proto/gen/guardyn/v1/notification.ts";
import { fromBase64Url, toBase64Url } from "../platform/base64url.ts";
import { NO_SANITIZERS } from "../../tests/support/wait.ts";

type Notifications = InstanceType<typeof NotificationServiceClient>;

interface Setup {
  a: TestPlatform;
  b: TestPlatform;
  c: Clients;
  nA: Notifications;
  nB: Notifications;
  vapidKey?: string;
  stream?: string;
}

/** A browser's Web Push subscription (RFC 8291 keys), as PushSubscription.toJSON() gives it. */
function subscription(endpoint = `https://push.example.test/${crypto.randomUUID()}`) {
  return JSON.stringify({
    endpoint,
    expirationTime: null,
    keys: {
      p256dh: toBase64Url(p256.getPublicKey(p256.utils.randomSecretKey(), false)),
      auth: toBase64Url(crypto.getRandomValues(new Uint8Array(16))),
    },
  });
}

function notificationSuite(backend: Backend) {
  let running: Promise<Setup> | undefined;
  const setup = () =>
    running ??= (async () => {
      const id = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
      const cluster = backend === "cluster";
      const vapidKey = toBase64Url(p256.utils.randomSecretKey());
      const env: Record<string, string> = {
        REGISTRATION_BURST: "1000",
        PUSH_REGISTRATIONS_PER_HOUR: "5",
        ...(cluster
          ? {
            NATS_STREAM: `GUARDYN_N_${id}`,
            NATS_SUBJECT_PREFIX: `guardyn.n${id}.events`,
            VAPID_PRIVATE_KEY: vapidKey,
          }
          : {}),
      };
      const a = await startPlatform(["auth", "notification"], { backend, env });
      const b = cluster ? await startPlatform(["notification"], { shared: a, env }) : a;
      return {
        a,
        b,
        c: clients(a.address),
        nA: webClient<Notifications>(NotificationServiceService, a.address),
        nB: webClient<Notifications>(NotificationServiceService, b.address),
        ...(cluster ? { vapidKey, stream: env.NATS_STREAM } : {}),
      };
    })();
  const test = (name: string, fn: (s: Setup) => Promise<void>) =>
    Deno.test({
      name: `notification (${backend}): ${name}`,
      ...NO_SANITIZERS,
      fn: async () => fn(await setup()),
    });

  test("settings: the VAPID public key and the enabled platforms", async (s) => {
    const alice = await register(s.c);
    const settings = await unary(s.nA.getPushSettings.bind(s.nA), {}, alice.accessToken);
    assertEquals(settings.vapidPublicKey.length, 65);
    assertEquals(settings.vapidPublicKey[0], 0x04);
    assertEquals(settings.enabledPlatforms, [
      PushPlatform.PUSH_PLATFORM_WEB_PUSH,
      PushPlatform.PUSH_PLATFORM_UNIFIED_PUSH,
    ]);
    const other = await unary(s.nB.getPushSettings.bind(s.nB), {}, alice.accessToken);
    assertEquals(other.vapidPublicKey, settings.vapidPublicKey, "every instance, one key");
    if (s.vapidKey) {
      const expected = p256.getPublicKey(fromBase64Url(s.vapidKey)!, false);
      assertEquals([...settings.vapidPublicKey], [...expected]);
    } else {
      const file = JSON.parse(
        await Deno.readTextFile(join(s.a.env.SQLITE_PATH!, "..", "vapid-key.json")),
      );
      assertEquals(typeof file.privateKey, "string");
      const info = await Deno.stat(join(s.a.env.SQLITE_PATH!, "..", "vapid-key.json"));
      assertEquals(info.mode! & 0o077, 0, "the key file is private to the service's user");
    }
  });

  test("register, replace, list without tokens, unregister", async (s) => {
    const alice = await register(s.c);
    const webPush = subscription();
    await unary(s.nA.registerPushToken.bind(s.nA), {
      platform: PushPlatform.PUSH_PLATFORM_WEB_PUSH,
      token: webPush,
      appId: "",
    }, alice.accessToken);
    const listed = await unary(s.nB.listPushTokens.bind(s.nB), {}, alice.accessToken);
    assertEquals(listed.registrations.length, 1);
    const [one] = listed.registrations;
    assertEquals([one!.deviceId, one!.platform, one!.lastDeliveredAtMs], [
      alice.deviceId,
      PushPlatform.PUSH_PLATFORM_WEB_PUSH,
      0,
    ]);
    assert(one!.registeredAtMs > 0);
    assert(!JSON.stringify(listed).includes("push.example.test"), "no token in the list");
    // The last registration wins: a UnifiedPush endpoint replaces the subscription.
    await unary(s.nB.registerPushToken.bind(s.nB), {
      platform: PushPlatform.PUSH_PLATFORM_UNIFIED_PUSH,
      token: "https://ntfy.example.test/up1234",
      appId: "",
    }, alice.accessToken);
    const replaced = await unary(s.nA.listPushTokens.bind(s.nA), {}, alice.accessToken);
    assertEquals(replaced.registrations.map((r) => r.platform), [
      PushPlatform.PUSH_PLATFORM_UNIFIED_PUSH,
    ]);
    // Another account sees none of it.
    const bob = await register(s.c);
    const bobs = await unary(s.nA.listPushTokens.bind(s.nA), {}, bob.accessToken);
    assertEquals(bobs.registrations, []);
    await unary(s.nB.unregisterPushToken.bind(s.nB), {}, alice.accessToken);
    await unary(s.nB.unregisterPushToken.bind(s.nB), {}, alice.accessToken); // no error again
    const gone = await unary(s.nA.listPushTokens.bind(s.nA), {}, alice.accessToken);
    assertEquals(gone.registrations, []);
  });

  test("bad tokens, disabled platforms, no token and the rate get clear errors", async (s) => {
    const carol = await register(s.c);
    const refused = async (platform: PushPlatform, token: string, appId = "") => {
      const f = await failure(
        unary(s.nA.registerPushToken.bind(s.nA), { platform, token, appId }, carol.accessToken),
      );
      assertEquals(f.code, grpc.status.INVALID_ARGUMENT, f.details);
      return f.details;
    };
    const web = PushPlatform.PUSH_PLATFORM_WEB_PUSH;
    assert((await refused(web, "")).includes("1..4096 bytes"));
    assert((await refused(web, "x".repeat(5000))).includes("1..4096 bytes"));
    assert((await refused(web, "https://push.example.test/1")).includes("keys"));
    assert((await refused(web, '{"endpoint":"http://plain.test/1","keys":{}}')).includes("https"));
    const badKey = JSON.parse(subscription());
    badKey.keys.p256dh = toBase64Url(new Uint8Array(64));
    assert((await refused(web, JSON.stringify(badKey))).includes("p256dh"));
    assert((await refused(PushPlatform.PUSH_PLATFORM_UNIFIED_PUSH, "ftp://x")).includes("https"));
    assert((await refused(PushPlatform.PUSH_PLATFORM_APNS, "ab".repeat(32))).includes("enabled"));
    assert((await refused(PushPlatform.PUSH_PLATFORM_UNSPECIFIED, "t")).includes("enabled"));
    assert((await refused(web, subscription(), "a".repeat(256))).includes("app_id"));
    assertEquals(
      (await unary(s.nA.listPushTokens.bind(s.nA), {}, carol.accessToken)).registrations,
      [],
    );
    const anonymous = await failure(
      unary(s.nA.registerPushToken.bind(s.nA), { platform: web, token: subscription(), appId: "" }),
    );
    assertEquals(anonymous.code, grpc.status.UNAUTHENTICATED);
    // PUSH_REGISTRATIONS_PER_HOUR is 5 here: the sixth in a row is refused, nothing lost.
    for (let i = 0; i < 5; i++) {
      await unary(s.nA.registerPushToken.bind(s.nA), {
        platform: web,
        token: subscription(),
        appId: "",
      }, carol.accessToken);
    }
    const limited = await failure(
      unary(
        s.nA.registerPushToken.bind(s.nA),
        { platform: web, token: subscription(), appId: "" },
        carol.accessToken,
      ),
    );
    assertEquals([limited.code, limited.reason], [grpc.status.RESOURCE_EXHAUSTED, "RATE_LIMITED"]);
    assertEquals(
      (await unary(s.nA.listPushTokens.bind(s.nA), {}, carol.accessToken)).registrations.length,
      1,
    );
  });

  Deno.test({
    name: `notification (${backend}): stop`,
    ...NO_SANITIZERS,
    fn: async () => {
      if (!running) return;
      const s = await running;
      s.c.close();
      s.nA.close();
      s.nB.close();
      if (s.b !== s.a) await s.b.stop();
      await s.a.stop();
      if (s.stream) await deleteStreams(NATS_URL, [s.stream]);
    },
  });
}

notificationSuite("embedded");
notificationSuite("cluster");
