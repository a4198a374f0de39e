/**
 * Faults on the cluster backends (Cassandra + JetStream): a messaging instance killed with
 * SIGKILL while a device streams from it, and nats-server killed and restarted under traffic.
 * Either way every sent message is delivered, and none twice once the client de-duplicates by
 * envelope id (the server never stores a message twice for a device).
 */

import { assert, assertEquals } from "../assert.ts";
import { startPlatform, type TestPlatform } from "../support/platform.ts";
import {
  deleteStreams,
  NATS_URL,
  NatsServerProcess,
} from "../../services/bus/conformance/nats_server.ts";
import {
  account,
  messageTo,
  messagingClient,
  type TestAccount,
  textOf,
} from "../../services/messaging/messaging_test_kit.ts";
import { MessagingProcess, ResilientReceiver, sendWithRetry } from "./faults_test_kit.ts";
import { clients } from "../support/accounts_test_kit.ts";
import { NO_SANITIZERS, sleep, waitUntil } from "../support/wait.ts";

const FAST = {
  MESSAGING_POLL_INTERVAL_MS: "500",
  MESSAGING_SEND_BURST: "10000",
  MESSAGING_SEND_PER_SECOND: "10000",
  MESSAGING_STREAM_OPENS_PER_MINUTE: "6000",
  SHUTDOWN_GRACE_MS: "500",
};

/** Two accounts with one device each, registered through the auth service. */
async function pair(platform: TestPlatform): Promise<[TestAccount, TestAccount]> {
  const c = clients(platform.address);
  try {
    return [await account(c, 1), await account(c, 1)];
  } finally {
    c.close();
  }
}

/** Every message exactly once among the unique envelopes, and nothing else. */
function assertExactlyOnce(receiver: ResilientReceiver, sent: string[]) {
  const got = [...receiver.unique.values()].map(({ envelope }) => envelope.clientMessageId);
  assertEquals(new Set(got).size, got.length, "a message was stored twice for the device");
  assertEquals([...got].sort(), [...sent].sort());
}

Deno.test({
  name: "faults: kill -9 of the instance a device streams from loses nothing",
  ...NO_SANITIZERS,
  fn: async () => {
    const id = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
    const namespace = {
      NATS_STREAM: `GUARDYN_F_${id}`,
      NATS_SUBJECT_PREFIX: `guardyn.f${id}.events`,
    };
    const auth = await startPlatform(["auth"], {
      backend: "cluster",
      env: { ...FAST, ...namespace },
    });
    const env = auth.env;
    const [sender, receiver] = await Promise.all([
      MessagingProcess.start(env),
      MessagingProcess.start(env),
    ]);
    const senderClient = messagingClient(sender.address);
    let inbox: ResilientReceiver | undefined;
    try {
      const [alice, bob] = await pair(auth);
      const from = alice.devices[0]!;
      inbox = new ResilientReceiver(bob.devices[0]!, () => receiver.address);
      inbox.start();
      const sent: string[] = [];
      const total = 150;
      let killedAt = -1;
      for (let i = 0; i < total; i++) {
        const request = messageTo(from, alice, bob, `k${i}`);
        await sendWithRetry(senderClient, from, request);
        sent.push(request.clientMessageId);
        if (i === 60) {
          // Mid-stream: the device has received some, more are on the way.
          await waitUntil(() => inbox!.unique.size >= 30, "some deliveries before the kill");
          await receiver.kill();
          killedAt = i;
        }
        if (i === 90) await receiver.restart();
        await sleep(10);
      }
      assert(killedAt > 0);
      await waitUntil(() => inbox!.unique.size >= total, `all ${total} messages`, 30_000);
      await sleep(300); // anything extra would show up now
      assertExactlyOnce(inbox, sent);
      assert(inbox.streamsOpened >= 2, "the device reconnected after the kill");
      await sender.assertRunning();
      await receiver.assertRunning();
      const texts = [...inbox.unique.values()].map(({ envelope }) => textOf(envelope));
      assert(texts.includes(`k${total - 1} for ${bob.devices[0]!.deviceId}`));
    } finally {
      // Kill first: a client's GOAWAY can abort a Deno server in nghttp2 (denoland/deno#36788).
      await Promise.all([sender.kill(), receiver.kill()]);
      await inbox?.stop();
      senderClient.close();
      await auth.stop();
      await deleteStreams(NATS_URL, [namespace.NATS_STREAM]).catch(() => {});
    }
  },
});

Deno.test({
  name: "faults: a nats-server restart under traffic delays delivery but loses nothing",
  ...NO_SANITIZERS,
  fn: async () => {
    const nats = await NatsServerProcess.start();
    const env = { ...FAST, NATS_URL: nats.url };
    const a = await startPlatform(["auth", "messaging"], { backend: "cluster", env });
    const b = await startPlatform(["messaging"], { shared: a });
    const m = messagingClient(a.address);
    let inbox: ResilientReceiver | undefined;
    try {
      const [alice, bob] = await pair(a);
      const from = alice.devices[0]!;
      inbox = new ResilientReceiver(bob.devices[0]!, () => b.address);
      inbox.start();
      await waitUntil(() => inbox!.streamsOpened > 0, "the stream");
      const sentAt = new Map<string, number>();
      const total = 150;
      let outage: { from: number; to: number } | undefined;
      for (let i = 0; i < total; i++) {
        const request = messageTo(from, alice, bob, `n${i}`);
        sentAt.set(request.clientMessageId, Date.now());
        // The store is the truth: sending never needs the bus, so no retry is expected here.
        await sendWithRetry(m, from, request, 5_000);
        if (i === 50) {
          await nats.kill();
          outage = { from: Date.now(), to: 0 };
        }
        if (i === 100) {
          await nats.restart();
          outage!.to = Date.now();
        }
        await sleep(10);
      }
      await waitUntil(() => inbox!.unique.size >= total, `all ${total} messages`, 30_000);
      await sleep(300);
      assertExactlyOnce(inbox, [...sentAt.keys()]);
      // The delay of messages sent while NATS was down is bounded by the poll interval.
      const delays = [...inbox.unique.values()].map(({ envelope, atMs }) =>
        atMs - sentAt.get(envelope.clientMessageId)!
      );
      const worst = Math.max(...delays);
      console.log(
        `nats outage ${outage!.to - outage!.from} ms; worst send→deliver delay ${worst} ms ` +
          `(poll interval ${FAST.MESSAGING_POLL_INTERVAL_MS} ms ±20%)`,
      );
      assert(worst < 5_000, `delivery delay ${worst} ms is bounded`);
    } finally {
      await inbox?.stop();
      m.close();
      await sleep(100);
      await b.stop();
      await a.stop();
      await nats.stop();
    }
  },
});
