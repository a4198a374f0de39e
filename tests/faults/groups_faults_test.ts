/**
 * Group faults on the cluster backends (Cassandra + JetStream): a groups instance killed with
 * SIGKILL while commits and messages go through it, and nats-server killed and restarted under
 * group traffic. Either way every member ends at the same epoch with the same epoch
 * authenticator (no fork) and reads every message exactly once.
 */

import * as grpc from "@grpc/grpc-js";
import { assert, assertEquals } from "../assert.ts";
import { startPlatform, type TestPlatform } from "../support/platform.ts";
import {
  deleteStreams,
  NATS_URL,
  NatsServerProcess,
} from "../../services/bus/conformance/nats_server.ts";
import { clients, publishKeys, register, type TestDevice } from "../support/accounts_test_kit.ts";
import { unary } from "../support/grpc.ts";
import { webClient } from "../support/web.ts";
import {
  generateKeyPackage,
  type KeyPackageBundle,
  MlsGroup,
  type PendingCommit,
} from "../../crypto/mls.ts";
import { toHex } from "../../crypto/primitives.ts";
import {
  EnvelopeType,
  GroupServiceClient,
  GroupServiceService,
  type SendCommitRequest,
} from "../../proto/gen/guardyn/v1/messaging.ts";
import { MessagingProcess, ResilientReceiver } from "./faults_test_kit.ts";
import { NO_SANITIZERS, sleep, waitUntil } from "../support/wait.ts";

type Groups = InstanceType<typeof GroupServiceClient>;
const FAST = {
  MESSAGING_POLL_INTERVAL_MS: "500",
  MESSAGING_STREAM_OPENS_PER_MINUTE: "6000",
  GROUPS_COMMIT_BURST: "10000",
  GROUPS_COMMITS_PER_MINUTE: "100000",
  SHUTDOWN_GRACE_MS: "500",
};

interface Member {
  device: TestDevice;
  bundle: KeyPackageBundle;
  group?: MlsGroup;
  inbox: ResilientReceiver;
  handled: Set<string>;
  texts: string[];
}

const identityOf = (d: TestDevice) => `${d.accountId}:${d.deviceId}`;

async function member(platform: TestPlatform, streamAt: () => string): Promise<Member> {
  const c = clients(platform.address);
  try {
    const device = await register(c);
    await publishKeys(c, device);
    const bundle = await generateKeyPackage(identityOf(device));
    await unary(c.keys.uploadKeyPackages.bind(c.keys), {
      cipherSuite: 1,
      keyPackages: [bundle.keyPackage],
      lastResortKeyPackage: new Uint8Array(),
      replaceExisting: false,
    }, device.accessToken);
    const inbox = new ResilientReceiver(device, streamAt);
    inbox.start();
    return { device, bundle, inbox, handled: new Set(), texts: [] };
  } finally {
    c.close();
  }
}

/** Calls `call` until it answers, across UNAVAILABLE and connection errors (a dead instance). */
async function retrying<T>(call: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      const code = (error as grpc.ServiceError).code;
      const transient = code === grpc.status.UNAVAILABLE ||
        code === grpc.status.DEADLINE_EXCEEDED || code === grpc.status.INTERNAL ||
        code === undefined;
      if (!transient || Date.now() > deadline) throw error;
      await sleep(100);
    }
  }
}

/** Applies the member's new envelopes in mailbox order (commits, welcome, messages). */
async function catchUp(m: Member, fetchTree: (epoch: number) => Promise<Uint8Array>) {
  const envelopes = [...m.inbox.unique.values()]
    .map((x) => x.envelope)
    .sort((a, b) => a.seq - b.seq);
  for (const envelope of envelopes) {
    if (m.handled.has(envelope.id)) continue;
    m.handled.add(envelope.id);
    if (envelope.type === EnvelopeType.ENVELOPE_TYPE_MLS_WELCOME) {
      const epoch = Number(envelope.clientMessageId.split(".").at(-1));
      m.group = await MlsGroup.join(envelope.content, m.bundle.privateKeyPackage, {
        groupInfo: await fetchTree(epoch),
      });
      continue;
    }
    if (!m.group) continue;
    const result = await m.group.process(envelope.content);
    if (result.kind === "application") m.texts.push(new TextDecoder().decode(result.plaintext));
  }
}

Deno.test({
  name: "faults: kill -9 of a groups instance mid-commit loses nothing and forks nothing",
  ...NO_SANITIZERS,
  fn: async () => {
    const id = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
    const namespace = {
      NATS_STREAM: `GUARDYN_GF_${id}`,
      NATS_SUBJECT_PREFIX: `guardyn.gf${id}.events`,
    };
    const core = await startPlatform(["auth", "messaging"], {
      backend: "cluster",
      env: { ...FAST, ...namespace },
    });
    const doomed = await MessagingProcess.start(core.env, "groups");
    const survivor = await startPlatform(["groups"], { shared: core });
    const gDoomed = webClient<Groups>(GroupServiceService, doomed.address);
    const gSurvivor = webClient<Groups>(GroupServiceService, survivor.address);
    let target = gDoomed;
    const members: Member[] = [];
    try {
      for (let i = 0; i < 3; i++) members.push(await member(core, () => core.address));
      const [alice, bob, carol] = members as [Member, Member, Member];
      alice.group = await MlsGroup.create({ deviceAddress: identityOf(alice.device) });
      const groupId = alice.group.groupId;
      const tree = async (epoch: number) => {
        const log = await retrying(() =>
          unary(gSurvivor.fetchCommits.bind(gSurvivor), {
            groupId,
            sinceEpoch: epoch,
            limit: 1,
          }, bob.device.accessToken)
        );
        return log.commits[0]!.groupInfo;
      };
      await unary(gDoomed.createGroup.bind(gDoomed), {
        groupId,
        cipherSuite: 1,
        groupInfo: await alice.group.groupInfo(),
      }, alice.device.accessToken);
      const c = clients(core.address);
      const claimed = await unary(c.keys.claimKeyPackages.bind(c.keys), {
        cipherSuite: 1,
        accountIds: [],
        devices: [bob, carol].map((m) => ({
          accountId: m.device.accountId,
          deviceId: m.device.deviceId,
        })),
      }, alice.device.accessToken);
      c.close();
      const adding = await alice.group.add(claimed.keyPackages.map((p) => p.keyPackage));
      const commitOf = (
        pending: typeof adding,
        added: Member[],
        clientMessageId: string,
      ): SendCommitRequest => ({
        groupId,
        epoch: Number(pending.epoch),
        commit: pending.commit,
        welcome: pending.welcome ?? new Uint8Array(),
        addedDevices: added.map((m) => ({
          accountId: m.device.accountId,
          deviceId: m.device.deviceId,
        })),
        removedDevices: [],
        groupInfo: pending.groupInfo,
        clientMessageId,
      });
      await unary(
        gDoomed.sendCommit.bind(gDoomed),
        commitOf(adding, [bob, carol], "add"),
        alice.device.accessToken,
      );
      alice.group.mergePendingCommit();

      const sent: string[] = [];
      let killed = false;
      for (let round = 0; round < 12; round++) {
        // Alice commits (an update); the same request is retried, on the survivor if needed.
        const pending: PendingCommit = await alice.group.update();
        const request = commitOf(pending, [], `update-${round}`);
        if (round === 5) {
          // The kill lands while the commit is in flight: it may have won its epoch, or not,
          // and its fan-out may be cut short.
          const inFlight = unary(
            gDoomed.sendCommit.bind(gDoomed),
            request,
            alice.device.accessToken,
          )
            .catch(() => undefined);
          await sleep(Math.random() * 20);
          await doomed.kill();
          killed = true;
          target = gSurvivor;
          await inFlight;
        }
        const answer = await retrying(() =>
          unary(target.sendCommit.bind(target), request, alice.device.accessToken)
        );
        assertEquals(answer.epoch, Number(pending.epoch) + 1, "the retry answers as the first");
        alice.group.mergePendingCommit();
        // Bob catches up and speaks in the new epoch.
        await waitUntil(
          async () => {
            await catchUp(bob, tree);
            return bob.group?.epoch === alice.group!.epoch;
          },
          `bob reaches epoch ${alice.group.epoch}`,
          20_000,
        );
        const text = `round ${round}`;
        const message = await bob.group!.encrypt(new TextEncoder().encode(text));
        await retrying(() =>
          unary(target.sendGroupMessage.bind(target), {
            groupId,
            epoch: Number(bob.group!.epoch),
            privateMessage: message,
            clientMessageId: `m-${round}`,
            ephemeral: false,
            silent: false,
          }, bob.device.accessToken)
        );
        sent.push(text);
        // Members read as they go (as clients do): old epochs' keys are kept only so long.
        for (const m of [alice, carol]) {
          await waitUntil(
            async () => {
              await catchUp(m, tree);
              return m.texts.length === sent.length;
            },
            `${text} read`,
            20_000,
          );
        }
      }
      assert(killed, "the instance was killed");
      for (const m of [alice, carol]) {
        await waitUntil(
          async () => {
            await catchUp(m, tree);
            return m.texts.length >= sent.length;
          },
          "every message read",
          30_000,
        );
        assertEquals(m.texts, sent, "each message exactly once, in order");
      }
      const epochs = members.map((m) => m.group!.epoch);
      assertEquals(new Set(epochs).size, 1, `one epoch: ${epochs.join(", ")}`);
      const prints = members.map((m) => toHex(m.group!.epochAuthenticator));
      assertEquals(new Set(prints).size, 1, "one epoch authenticator: no fork");
    } finally {
      await doomed.kill();
      for (const m of members) await m.inbox.stop();
      gDoomed.close();
      gSurvivor.close();
      await survivor.stop();
      await core.stop();
      await deleteStreams(NATS_URL, [namespace.NATS_STREAM]).catch(() => {});
    }
  },
});

Deno.test({
  name: "faults: a nats-server restart under group traffic delays delivery but loses nothing",
  ...NO_SANITIZERS,
  fn: async () => {
    const nats = await NatsServerProcess.start();
    const core = await startPlatform(["auth", "messaging", "groups"], {
      backend: "cluster",
      env: { ...FAST, NATS_URL: nats.url },
    });
    const g = webClient<Groups>(GroupServiceService, core.address);
    const members: Member[] = [];
    try {
      for (let i = 0; i < 2; i++) members.push(await member(core, () => core.address));
      const [alice, bob] = members as [Member, Member];
      alice.group = await MlsGroup.create({ deviceAddress: identityOf(alice.device) });
      const groupId = alice.group.groupId;
      await unary(g.createGroup.bind(g), {
        groupId,
        cipherSuite: 1,
        groupInfo: await alice.group.groupInfo(),
      }, alice.device.accessToken);
      const c = clients(core.address);
      const claimed = await unary(c.keys.claimKeyPackages.bind(c.keys), {
        cipherSuite: 1,
        accountIds: [],
        devices: [{ accountId: bob.device.accountId, deviceId: bob.device.deviceId }],
      }, alice.device.accessToken);
      c.close();
      const pending = await alice.group.add([claimed.keyPackages[0]!.keyPackage]);
      await unary(g.sendCommit.bind(g), {
        groupId,
        epoch: 0,
        commit: pending.commit,
        welcome: pending.welcome!,
        addedDevices: [{ accountId: bob.device.accountId, deviceId: bob.device.deviceId }],
        removedDevices: [],
        groupInfo: pending.groupInfo,
        clientMessageId: "add-bob",
      }, alice.device.accessToken);
      alice.group.mergePendingCommit();
      const tree = async (epoch: number) =>
        (await unary(
          g.fetchCommits.bind(g),
          { groupId, sinceEpoch: epoch, limit: 1 },
          bob.device.accessToken,
        ))
          .commits[0]!.groupInfo;
      const sent: string[] = [];
      for (let i = 0; i < 60; i++) {
        const text = `n${i}`;
        await unary(g.sendGroupMessage.bind(g), {
          groupId,
          epoch: Number(alice.group.epoch),
          privateMessage: await alice.group.encrypt(new TextEncoder().encode(text)),
          clientMessageId: `n-${i}`,
          ephemeral: false,
          silent: false,
        }, alice.device.accessToken);
        sent.push(text);
        if (i === 20) await nats.kill();
        if (i === 40) await nats.restart();
        await sleep(10);
      }
      await waitUntil(
        async () => {
          await catchUp(bob, tree);
          return bob.texts.length >= sent.length;
        },
        "every group message",
        30_000,
      );
      assertEquals(bob.texts, sent);
      assertEquals(toHex(bob.group!.epochAuthenticator), toHex(alice.group.epochAuthenticator));
    } finally {
      for (const m of members) await m.inbox.stop();
      g.close();
      await sleep(100);
      await core.stop();
      await nats.stop();
    }
  },
});
