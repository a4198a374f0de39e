/**
 * GroupService end to end through gRPC-Web, with real MLS clients (crypto/mls.ts) on the test
 * side, on the embedded store and on Cassandra + JetStream. The cluster run has TWO instances
 * sharing the store and the bus: commits go to instance A, streams and messages to B.
 */

import * as grpc from "@grpc/grpc-js";
import { assert, assertEquals } from "../../tests/assert.ts";
import { failure, unary } from "../../tests/support/grpc.ts";
import { type Backend, startPlatform, type TestPlatform } from "../../tests/support/platform.ts";
import { webClient } from "../../tests/support/web.ts";
import { deleteStreams, NATS_URL } from "../bus/conformance/nats_server.ts";
import {
  type Clients,
  clients,
  login,
  publishKeys,
  register,
  type TestDevice,
} from "../../tests/support/accounts_test_kit.ts";
import { generateKeyPackage, type KeyPackageBundle, MlsGroup } from "../../crypto/mls.ts";
import { EpochConflict } from "../../proto/gen/guardyn/v1/common.ts";
import {
  type Envelope,
  EnvelopeType,
  GroupServiceClient,
  GroupServiceService,
} from "../../proto/gen/guardyn/v1/messaging.ts";
import {
  type Messaging,
  messagingClient,
  ReceiveSession,
} from "../../tests/support/receive_session.ts";
import { NO_SANITIZERS, waitUntil } from "../../tests/support/wait.ts";
import type { IdentityKeyPair } from "../../crypto/keys.ts";
import { identityOf } from "./request_rules.ts";

type Groups = InstanceType<typeof GroupServiceClient>;
const SUITE = 1;
const text = (s: string) => new TextEncoder().encode(s);
const read = (b: Uint8Array) => new TextDecoder().decode(b);

/** One device on the test side: its tokens, its key packages, its MLS state and its stream. */
interface Member {
  device: TestDevice;
  identity: IdentityKeyPair;
  bundles: KeyPackageBundle[];
  group?: MlsGroup;
  stream: ReceiveSession;
  /** Envelopes this member has handled, by id. */
  seen: Set<string>;
}

interface Setup {
  a: TestPlatform;
  b: TestPlatform;
  c: Clients;
  gA: Groups;
  gB: Groups;
  mB: Messaging;
  stream?: string;
  /** Every member made, to close their streams at the end. */
  members: Member[];
}

function groupsClient(address: string): Groups {
  return webClient<Groups>(GroupServiceService, address);
}

export function groupSuite(backend: Backend) {
  let running: Promise<Setup> | undefined;
  const setup = () =>
    running ??= (async () => {
      const id = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
      const env: Record<string, string> = {
        REGISTRATION_BURST: "1000",
        REGISTRATIONS_PER_MINUTE: "100000",
        PREKEY_FETCH_BURST: "10000",
        PREKEY_FETCH_PER_MINUTE: "100000",
        ONE_TIME_CLAIMS_PER_ACCOUNT_PER_HOUR: "100000",
        MESSAGING_STREAM_OPENS_PER_MINUTE: "6000",
        MESSAGING_POLL_INTERVAL_MS: "2000",
        GROUPS_COMMIT_BURST: "1000",
        GROUPS_COMMITS_PER_MINUTE: "6000",
        ...(backend === "cluster"
          ? { NATS_STREAM: `GUARDYN_G_${id}`, NATS_SUBJECT_PREFIX: `guardyn.g${id}.events` }
          : {}),
      };
      const services = ["auth", "messaging", "groups"];
      const a = await startPlatform(services, { backend, env });
      const b = backend === "cluster"
        ? await startPlatform(["messaging", "groups"], { shared: a, env })
        : a;
      return {
        a,
        b,
        c: clients(a.address),
        gA: groupsClient(a.address),
        gB: groupsClient(b.address),
        mB: messagingClient(b.address),
        members: [],
        ...(backend === "cluster" ? { stream: env.NATS_STREAM } : {}),
      };
    })();
  const test = (name: string, fn: (s: Setup) => Promise<void>) =>
    Deno.test({
      name: `groups (${backend}): ${name}`,
      ...NO_SANITIZERS,
      fn: async () => {
        const s = await setup();
        treeSource = s.gB;
        await fn(s);
      },
    });

  /** A new device (of a new account, or of `sibling`'s) with published keys and packages. */
  async function member(s: Setup, sibling?: Member): Promise<Member> {
    const device = sibling
      ? await login(s.c, sibling.device.username, `device-${crypto.randomUUID().slice(0, 6)}`)
      : await register(s.c);
    const identity = await publishKeys(s.c, device, sibling ? { identity: sibling.identity } : {});
    const bundles = await Promise.all(
      [0, 1, 2].map(() => generateKeyPackage(identityOf(device))),
    );
    await unary(s.c.keys.uploadKeyPackages.bind(s.c.keys), {
      cipherSuite: SUITE,
      keyPackages: bundles.map((b) => b.keyPackage),
      lastResortKeyPackage: new Uint8Array(),
      replaceExisting: false,
    }, device.accessToken);
    const stream = new ReceiveSession(s.mB, device.accessToken);
    await stream.waitFor(() => stream.drainedCount() !== undefined, "stream open");
    const m = { device, identity, bundles, stream, seen: new Set<string>() };
    s.members.push(m);
    return m;
  }

  /** Claims a key package of each device for an Add, as the SDK does. */
  async function claim(s: Setup, by: Member, devices: Member[]): Promise<Uint8Array[]> {
    const answer = await unary(s.c.keys.claimKeyPackages.bind(s.c.keys), {
      cipherSuite: SUITE,
      accountIds: [],
      devices: devices.map((d) => ({ accountId: d.device.accountId, deviceId: d.device.deviceId })),
    }, by.device.accessToken);
    return devices.map((d) =>
      answer.keyPackages.find((p) => p.device!.deviceId === d.device.deviceId)!.keyPackage
    );
  }

  async function createGroup(s: Setup, creator: Member): Promise<Uint8Array> {
    creator.group = await MlsGroup.create({ deviceAddress: identityOf(creator.device) });
    const groupId = creator.group.groupId;
    const created = await unary(s.gA.createGroup.bind(s.gA), {
      groupId,
      cipherSuite: SUITE,
      groupInfo: await creator.group.groupInfo(),
    }, creator.device.accessToken);
    assertEquals(created.epoch, 0);
    return groupId;
  }

  /** Commits the committer's pending commit through the server; merges it when accepted. */
  async function commit(
    s: Setup,
    committer: Member,
    change: { added?: Member[]; removed?: Member[] } = {},
    g: Groups = s.gA,
  ) {
    const pending = committer.group!.pendingCommit!;
    const response = await unary(g.sendCommit.bind(g), {
      groupId: committer.group!.groupId,
      epoch: Number(pending.epoch),
      commit: pending.commit,
      welcome: pending.welcome ?? new Uint8Array(),
      addedDevices: (change.added ?? []).map(addressOf),
      removedDevices: (change.removed ?? []).map(addressOf),
      groupInfo: pending.groupInfo,
      clientMessageId: `c-${crypto.randomUUID()}`,
    }, committer.device.accessToken);
    committer.group!.mergePendingCommit();
    return response;
  }

  /** Processes every new group envelope the member's stream received, in order. */
  async function catchUp(m: Member, groupId: Uint8Array): Promise<string[]> {
    const texts: string[] = [];
    for (const envelope of m.stream.mail()) {
      if (m.seen.has(envelope.id)) continue;
      m.seen.add(envelope.id);
      texts.push(...await handle(m, envelope, groupId));
      m.stream.ack([envelope.id]);
    }
    return texts;
  }

  /** As a joining SDK does: the tree the Welcome leaves out, from the group's GroupInfo. */
  let treeSource: Groups | undefined;
  async function treeFor(m: Member, envelope: Envelope): Promise<Uint8Array> {
    const groupId = envelope.groupId;
    assert(groupId.byteLength > 0, "the welcome envelope names its group");
    const epoch = Number(envelope.clientMessageId.split(".").at(-1));
    const log = await unary(treeSource!.fetchCommits.bind(treeSource!), {
      groupId,
      sinceEpoch: epoch,
      limit: 1,
    }, m.device.accessToken);
    if (log.commits[0]?.groupInfo.byteLength) return log.commits[0].groupInfo;
    const state = await unary(
      treeSource!.getGroupState.bind(treeSource!),
      { groupId },
      m.device.accessToken,
    );
    return state.groupInfo;
  }

  async function handle(m: Member, envelope: Envelope, groupId: Uint8Array): Promise<string[]> {
    if (envelope.type === EnvelopeType.ENVELOPE_TYPE_MLS_WELCOME) {
      for (const bundle of m.bundles) {
        try {
          m.group = await MlsGroup.join(envelope.content, bundle.privateKeyPackage, {
            groupInfo: await treeFor(m, envelope),
          });
          return [];
        } catch {
          // Another of our packages.
        }
      }
      throw new Error("no key package of this device opens the welcome");
    }
    if (!m.group?.active) return [];
    assertEquals(Array.from(envelope.groupId), Array.from(groupId), "envelope names its group");
    const incoming = await m.group.process(envelope.content);
    return incoming.kind === "application" ? [read(incoming.plaintext)] : [];
  }

  const addressOf = (m: Member) => ({
    accountId: m.device.accountId,
    deviceId: m.device.deviceId,
  });

  async function say(s: Setup, from: Member, words: string) {
    const message = await from.group!.encrypt(text(words));
    return await unary(s.gB.sendGroupMessage.bind(s.gB), {
      groupId: from.group!.groupId,
      epoch: Number(from.group!.epoch),
      privateMessage: message,
      clientMessageId: `m-${crypto.randomUUID()}`,
      ephemeral: false,
      silent: false,
    }, from.device.accessToken);
  }

  test("create, add three devices, talk, and every member reads every message", async (s) => {
    const alice = await member(s);
    const [bob, carol] = [await member(s), await member(s)];
    const alicePhone = await member(s, alice);
    const groupId = await createGroup(s, alice);
    const packages = await claim(s, alice, [bob, carol, alicePhone]);
    await alice.group!.add(packages);
    const accepted = await commit(s, alice, { added: [bob, carol, alicePhone] });
    assertEquals(accepted.epoch, 1);
    for (const m of [bob, carol, alicePhone]) {
      await m.stream.waitFor(() => m.stream.mail().length >= 1, "welcome");
      await catchUp(m, groupId);
      assertEquals(m.group?.epoch, 1n);
    }
    const sent = await say(s, bob, "hello group");
    assertEquals(sent.recipientCount, 3);
    for (const m of [alice, carol, alicePhone]) {
      await m.stream.waitFor(() => m.stream.mail().some((e) => !m.seen.has(e.id)), "message");
      assertEquals(await catchUp(m, groupId), ["hello group"]);
    }
    const state = await unary(s.gB.getGroupState.bind(s.gB), { groupId }, carol.device.accessToken);
    assertEquals(state.epoch, 1);
    assertEquals(state.members.length, 4);
    const listed = await unary(
      s.gB.listGroups.bind(s.gB),
      { page: { pageSize: 0, pageToken: "" } },
      alicePhone.device.accessToken,
    );
    assert(listed.groups.some((g) => read(g.groupId) === read(groupId)), "listed");
  });

  test("of two commits for one epoch exactly one wins; the loser learns the epoch", async (s) => {
    const [alice, bob] = [await member(s), await member(s)];
    const groupId = await createGroup(s, alice);
    await alice.group!.add(await claim(s, alice, [bob]));
    await commit(s, alice, { added: [bob] });
    await bob.stream.waitFor(() => bob.stream.mail().length >= 1, "welcome");
    await catchUp(bob, groupId);
    await alice.group!.update();
    await bob.group!.update();
    const attempts = [alice, bob].map((m, i) =>
      commit(s, m, {}, i === 0 ? s.gA : s.gB).then(() => "won", (e) => e as grpc.ServiceError)
    );
    const outcomes = await Promise.all(attempts);
    assertEquals(outcomes.filter((o) => o === "won").length, 1);
    const lost = outcomes.find((o) => o !== "won") as grpc.ServiceError;
    assertEquals(lost.code, grpc.status.ABORTED);
    const reason = lost.metadata.get("guardyn-error-reason")[0];
    assertEquals(reason, "STALE_EPOCH");
    const detail = lost.metadata.get("guardyn-error-detail-bin")[0] as Uint8Array;
    assertEquals(EpochConflict.decode(detail).currentEpoch, 2);
    // The loser processes the winner (its own pending commit is dropped) and stays in sync.
    const loser = outcomes[0] === "won" ? bob : alice;
    const winner = loser === bob ? alice : bob;
    await loser.stream.waitFor(() => loser.stream.mail().some((e) => !loser.seen.has(e.id)), "c");
    await catchUp(loser, groupId);
    assertEquals(loser.group!.epoch, 2n);
    await say(s, loser, "in sync");
    await winner.stream.waitFor(
      () => winner.stream.mail().some((e) => !winner.seen.has(e.id)),
      "m",
    );
    assertEquals((await catchUp(winner, groupId)).at(-1), "in sync");
    const log = await unary(s.gB.fetchCommits.bind(s.gB), {
      groupId,
      sinceEpoch: 0,
      limit: 0,
    }, bob.device.accessToken);
    assertEquals(log.commits.map((c) => c.epoch), [0, 1]);
    assertEquals(log.currentEpoch, 2);
  });

  test("the server refuses forged and misdescribed commits and changes nothing", async (s) => {
    const [alice, bob, mallory] = [await member(s), await member(s), await member(s)];
    const groupId = await createGroup(s, alice);
    const token = alice.device.accessToken;
    const attempt = (
      pending: { commit: Uint8Array; welcome?: Uint8Array; groupInfo: Uint8Array },
      added: Member[],
      by = token,
    ) =>
      unary(s.gA.sendCommit.bind(s.gA), {
        groupId,
        epoch: 0,
        commit: pending.commit,
        welcome: pending.welcome ?? new Uint8Array(),
        addedDevices: added.map(addressOf),
        removedDevices: [],
        groupInfo: pending.groupInfo,
        clientMessageId: `c-${crypto.randomUUID()}`,
      }, by);
    // A key package bob published but nobody claimed: refused.
    const unclaimed = await alice.group!.add([bob.bundles[2]!.keyPackage]);
    const refused = await failure(attempt(unclaimed, [bob]));
    assertEquals(refused.code, grpc.status.INVALID_ARGUMENT);
    assert(refused.details.includes("ClaimKeyPackages"), refused.details);
    // A package the caller made up for bob (a forged credential): refused the same way.
    alice.group!.discardPendingCommit();
    const forged = await generateKeyPackage(identityOf(bob.device));
    const fake = await alice.group!.add([forged.keyPackage]);
    assertEquals((await failure(attempt(fake, [bob]))).code, grpc.status.INVALID_ARGUMENT);
    // A claimed package, but the request names another device.
    alice.group!.discardPendingCommit();
    const real = await alice.group!.add(await claim(s, alice, [bob]));
    const wrongList = await failure(attempt(real, [mallory]));
    assert(wrongList.details.includes("added_devices"), wrongList.details);
    // Someone outside the group.
    const outsider = await failure(attempt(real, [bob], mallory.device.accessToken));
    assertEquals(outsider.reason, "NOT_A_MEMBER");
    const state = await unary(s.gA.getGroupState.bind(s.gA), { groupId }, token);
    assertEquals([state.epoch, state.members.length], [0, 1]);
    // The honest commit still lands.
    assertEquals((await attempt(real, [bob])).epoch, 1);
  });

  test("a removed member learns it, can fetch that commit and can send no more", async (s) => {
    const [alice, bob, carol] = [await member(s), await member(s), await member(s)];
    const groupId = await createGroup(s, alice);
    await alice.group!.add(await claim(s, alice, [bob, carol]));
    await commit(s, alice, { added: [bob, carol] });
    for (const m of [bob, carol]) {
      await m.stream.waitFor(() => m.stream.mail().length >= 1, "welcome");
      await catchUp(m, groupId);
    }
    const carolLeaf = carol.group!.ownLeafIndex;
    await alice.group!.remove([carolLeaf]);
    await commit(s, alice, { removed: [carol] });
    await carol.stream.waitFor(() => carol.stream.mail().some((e) => !carol.seen.has(e.id)), "rm");
    await catchUp(carol, groupId);
    assertEquals(carol.group!.active, false);
    const fetched = await unary(s.gB.fetchCommits.bind(s.gB), {
      groupId,
      sinceEpoch: 1,
      limit: 1,
    }, carol.device.accessToken);
    assertEquals(fetched.commits.length, 1);
    const refused = await failure(
      unary(s.gB.sendGroupMessage.bind(s.gB), {
        groupId,
        epoch: 2,
        privateMessage: await bob.group!.encrypt(text("x")),
        clientMessageId: "m-1",
        ephemeral: false,
        silent: false,
      }, carol.device.accessToken),
    );
    assertEquals(refused.reason, "NOT_A_MEMBER");
    await bob.stream.waitFor(() => bob.stream.mail().some((e) => !bob.seen.has(e.id)), "rm");
    await catchUp(bob, groupId);
    await say(s, bob, "after carol");
    await alice.stream.waitFor(() => alice.stream.mail().some((e) => !alice.seen.has(e.id)), "m");
    assertEquals((await catchUp(alice, groupId)).at(-1), "after carol");
  });

  test("a retried commit answers as the first; a fan-out cut short is finished", async (s) => {
    const [alice, bob] = [await member(s), await member(s)];
    const groupId = await createGroup(s, alice);
    const pending = await alice.group!.add(await claim(s, alice, [bob]));
    const request = {
      groupId,
      epoch: 0,
      commit: pending.commit,
      welcome: pending.welcome!,
      addedDevices: [addressOf(bob)],
      removedDevices: [],
      groupInfo: pending.groupInfo,
      clientMessageId: "retried-commit",
    };
    const first = await unary(s.gA.sendCommit.bind(s.gA), request, alice.device.accessToken);
    const again = await unary(s.gB.sendCommit.bind(s.gB), request, alice.device.accessToken);
    assertEquals(again, first);
    alice.group!.mergePendingCommit();
    await bob.stream.waitFor(() => bob.stream.mail().length >= 1, "welcome");
    assertEquals(bob.stream.mail().length, 1, "one welcome, not two");
    await catchUp(bob, groupId);

    // An instance that dies between the epoch decision and the fan-out: the store has the
    // commit, no mailbox has it. The next call on the group finishes the fan-out.
    const store = s.a.platform.deps.store;
    await alice.group!.update();
    const update = alice.group!.pendingCommit!;
    const state = (await store.groups.get(groupId))!;
    const recordKey = crypto.getRandomValues(new Uint8Array(32));
    const applied = await store.groups.commit({
      groupId,
      epoch: 1,
      members: state.members,
      groupInfo: update.groupInfo,
      nowMs: Date.now(),
      retentionMs: 3600_000,
      commit: {
        epoch: 1,
        commit: update.commit,
        welcome: new Uint8Array(),
        groupInfo: new Uint8Array(),
        sender: { accountId: alice.device.accountId, deviceId: alice.device.deviceId },
        recordKey,
        added: [],
        removed: [],
        serverTimestampMs: Date.now(),
      },
    });
    assertEquals(applied, { applied: true, epoch: 2 });
    alice.group!.mergePendingCommit();
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert(!bob.stream.mail().some((e) => !bob.seen.has(e.id)), "nothing sent yet");
    await unary(s.gB.getGroupState.bind(s.gB), { groupId }, alice.device.accessToken);
    await bob.stream.waitFor(() => bob.stream.mail().some((e) => !bob.seen.has(e.id)), "commit");
    await catchUp(bob, groupId);
    assertEquals(bob.group!.epoch, 2n);
    assertEquals((await store.groups.get(groupId))!.fannedOutEpoch, 2);
  });

  test("a revoked device leaves the roster at once; its leaf is removed by a commit", async (s) => {
    const [alice, bob] = [await member(s), await member(s)];
    const bobPhone = await member(s, bob);
    const groupId = await createGroup(s, alice);
    await alice.group!.add(await claim(s, alice, [bob, bobPhone]));
    await commit(s, alice, { added: [bob, bobPhone] });
    for (const m of [bob, bobPhone]) {
      await m.stream.waitFor(() => m.stream.mail().length >= 1, "welcome");
      await catchUp(m, groupId);
    }
    await unary(
      s.c.auth.revokeDevice.bind(s.c.auth),
      { deviceId: bobPhone.device.deviceId },
      bob.device.accessToken,
    );
    const gone = async () =>
      !(await unary(s.gB.getGroupState.bind(s.gB), { groupId }, alice.device.accessToken))
        .members.some((d) => d.deviceId === bobPhone.device.deviceId);
    await waitUntil(gone, "the revoked device leaves the roster mirror");
    const sent = await say(s, alice, "after the revocation");
    assertEquals(sent.recipientCount, 1, "only bob's remaining device gets it");
    // Its leaf is still in the MLS tree: a member commits the removal, which the server takes.
    await alice.group!.remove([bobPhone.group!.ownLeafIndex]);
    const removed = await commit(s, alice, { removed: [bobPhone] });
    assertEquals(removed.epoch, 2);
    const state = await unary(s.gB.getGroupState.bind(s.gB), { groupId }, alice.device.accessToken);
    assertEquals(
      state.members.map((d) => d.deviceId).sort(),
      [
        alice.device.deviceId,
        bob.device.deviceId,
      ].sort(),
    );
  });

  test("a 100-device group: every device reads every message, once", async (s) => {
    const everyone: Member[] = [];
    for (let i = 0; i < 100; i += 10) {
      everyone.push(...await Promise.all(Array.from({ length: 10 }, () => member(s))));
    }
    const [owner, ...rest] = everyone as [Member, ...Member[]];
    const groupId = await createGroup(s, owner);
    for (let i = 0; i < rest.length; i += 50) {
      const batch = rest.slice(i, i + 50);
      await owner.group!.add(await claim(s, owner, batch));
      await commit(s, owner, { added: batch });
    }
    // Everyone joins and applies the second commit (the first 50 joined before it).
    for (const m of rest) {
      await m.stream.waitFor(() => m.stream.mail().length >= 1, "welcome", 30_000);
    }
    const speakers = [owner, ...rest.slice(0, 4)];
    for (const m of rest) {
      await waitUntil(
        async () => {
          await catchUp(m, groupId);
          return m.group?.epoch === 2n;
        },
        "every member at epoch 2",
        30_000,
      );
    }
    for (const [i, m] of speakers.entries()) {
      const sent = await say(s, m, `from speaker ${i}`);
      assertEquals(sent.recipientCount, 99);
    }
    const expected = speakers.map((_, i) => `from speaker ${i}`);
    for (const m of everyone) {
      const own = speakers.indexOf(m);
      const want = expected.filter((_, i) => i !== own);
      const got: string[] = [];
      await m.stream.waitFor(
        () => m.stream.mail().filter((e) => !m.seen.has(e.id)).length >= want.length,
        "all messages",
        30_000,
      );
      got.push(...await catchUp(m, groupId));
      assertEquals(got.sort(), want.sort());
    }
  });

  test("bad requests get INVALID_ARGUMENT naming the field and limit", async (s) => {
    const alice = await member(s);
    const token = alice.device.accessToken;
    const cases: [() => Promise<unknown>, string][] = [
      [
        () =>
          unary(s.gA.createGroup.bind(s.gA), {
            groupId: new Uint8Array(65),
            cipherSuite: SUITE,
            groupInfo: new Uint8Array([1]),
          }, token),
        "group_id",
      ],
      [
        () =>
          unary(s.gA.createGroup.bind(s.gA), {
            groupId: new Uint8Array(8),
            cipherSuite: 9999,
            groupInfo: new Uint8Array([1]),
          }, token),
        "cipher_suite",
      ],
      [
        () =>
          unary(s.gA.fetchCommits.bind(s.gA), {
            groupId: new Uint8Array(8),
            sinceEpoch: 0,
            limit: 101,
          }, token),
        "limit",
      ],
      [
        () =>
          unary(s.gA.listGroups.bind(s.gA), {
            page: { pageSize: 0, pageToken: "not-a-token" },
          }, token),
        "page_token",
      ],
    ];
    for (const [call, field] of cases) {
      const error = await failure(call());
      assertEquals(error.code, grpc.status.INVALID_ARGUMENT, field);
      assert(error.details.includes(field), `${field}: ${error.details}`);
    }
    const missing = await failure(
      unary(s.gA.getGroupState.bind(s.gA), { groupId: new Uint8Array(8) }, token),
    );
    assertEquals(missing.code, grpc.status.NOT_FOUND);
    const anonymous = await failure(
      unary(s.gA.getGroupState.bind(s.gA), { groupId: new Uint8Array(8) }),
    );
    assertEquals(anonymous.code, grpc.status.UNAUTHENTICATED);
  });

  Deno.test({
    name: `groups (${backend}): stop`,
    ...NO_SANITIZERS,
    fn: async () => {
      if (!running) return;
      const s = await running;
      await Promise.all(s.members.map((m) => m.stream.close()));
      s.c.close();
      for (const g of [s.gA, s.gB, s.mB]) g.close();
      if (s.b !== s.a) await s.b.stop();
      await s.a.stop();
      if (s.stream) await deleteStreams(NATS_URL, [s.stream]);
    },
  });
}

groupSuite("embedded");
groupSuite("cluster");
