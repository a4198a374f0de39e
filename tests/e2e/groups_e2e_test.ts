/**
 * Group chat end to end through the SDK (MLS on the clients, GroupService on the server), on
 * the embedded store and on Cassandra + NATS JetStream with two instances of every service.
 * What is checked is what members see - messages, membership, the group fingerprint - and,
 * at the end, that the server's tables hold no group plaintext.
 */

import { assert, assertEquals } from "../assert.ts";
import type { Backend } from "../support/platform.ts";
import { registered, startWorld, type TestClient, type World } from "./e2e_test_kit.ts";
import { scanCql, scanSqlite } from "./server_tables.ts";
import { NO_SANITIZERS, waitUntil } from "../support/wait.ts";

function groupsE2e(backend: Backend) {
  let running: Promise<World> | undefined;
  const world = () => running ??= startWorld(backend);
  const test = (name: string, fn: (w: World) => Promise<void>) =>
    Deno.test({
      name: `e2e groups (${backend}): ${name}`,
      ...NO_SANITIZERS,
      fn: async () => fn(await world()),
    });
  const idOf = (h: TestClient) => h.client.account!.accountId;
  const texts = (h: TestClient, groupId: string) =>
    h.client.groupMessages(groupId).map((m) => m.body);
  const inGroup = (h: TestClient, groupId: string) =>
    h.client.groups().find((g) => g.id === groupId);
  const markers: string[] = [];

  /** Waits until every member sees the same epoch and the same fingerprint. */
  async function converged(members: TestClient[], groupId: string, epoch: number) {
    await waitUntil(
      () => members.every((m) => inGroup(m, groupId)?.epoch === epoch),
      `all at epoch ${epoch}`,
    );
    const prints = await Promise.all(members.map((m) => m.client.groupFingerprint(groupId)));
    assertEquals(new Set(prints).size, 1, `one fingerprint: ${prints.join(" / ")}`);
  }

  test("create with two members; everyone reads everyone; rename", async (w) => {
    const [alice, bob, carol] = [
      await registered(w, "alice"),
      await registered(w, "bob"),
      await registered(w, "carol"),
    ];
    const group = await alice.client.createGroup("climbing", [idOf(bob), idOf(carol)]);
    assertEquals(group.epoch, 1);
    assertEquals(group.members.length, 3);
    await waitUntil(() => inGroup(bob, group.id)?.name === "climbing", "bob joins, named");
    await waitUntil(() => inGroup(carol, group.id)?.name === "climbing", "carol joins, named");
    await converged([alice, bob, carol], group.id, 1);
    const marker = `group secret ${crypto.randomUUID()}`;
    markers.push(marker);
    await bob.client.sendGroupText(group.id, marker);
    await carol.client.sendGroupText(group.id, "hi all");
    for (const m of [alice, bob, carol]) {
      await waitUntil(() => texts(m, group.id).length === 2, "two messages");
    }
    await alice.client.renameGroup(group.id, "climbing club");
    await waitUntil(() => inGroup(carol, group.id)?.name === "climbing club", "renamed");
    assert(bob.events.some((e) => e.type === "group-joined" && e.groupId === group.id));
  });

  test("typing and read receipts in a group", async (w) => {
    const [alice, bob, carol] = [
      await registered(w, "alice"),
      await registered(w, "bob"),
      await registered(w, "carol"),
    ];
    const group = await alice.client.createGroup("receipts", [idOf(bob), idOf(carol)]);
    await converged([alice, bob, carol], group.id, 1);
    await alice.client.sendGroupTyping(group.id, true);
    for (const m of [bob, carol]) {
      await waitUntil(
        () =>
          m.events.some((e) =>
            e.type === "group-typing" && e.typing && e.from.accountId === idOf(alice)
          ),
        "typing seen",
      );
    }
    const sent = await alice.client.sendGroupText(group.id, "read me");
    await waitUntil(() => texts(bob, group.id).includes("read me"), "bob has it");
    assertEquals(await bob.client.markGroupRead(group.id), 1);
    await waitUntil(
      () =>
        alice.client.groupMessages(group.id).find((m) => m.id === sent.id)?.readBy?.includes(
          idOf(bob),
        ) === true,
      "alice sees bob's read receipt",
    );
    assert(alice.events.some((e) => e.type === "group-read" && e.by === idOf(bob)));
  });

  test("two members add at once: both changes land, no fork", async (w) => {
    const [alice, bob, carol] = [
      await registered(w, "alice"),
      await registered(w, "bob"),
      await registered(w, "carol"),
    ];
    const [dave, erin] = [await registered(w, "dave"), await registered(w, "erin")];
    const group = await alice.client.createGroup("race", [idOf(bob), idOf(carol)]);
    await converged([alice, bob, carol], group.id, 1);
    // Both commits are made at epoch 1; one loses, catches up, re-creates and resends.
    await Promise.all([
      bob.client.addToGroup(group.id, [idOf(dave)]),
      carol.client.addToGroup(group.id, [idOf(erin)]),
    ]);
    const everyone = [alice, bob, carol, dave, erin];
    await converged(everyone, group.id, 3);
    assertEquals(inGroup(erin, group.id)!.members.length, 5);
    await erin.client.sendGroupText(group.id, "hello from erin");
    for (const m of [alice, bob, carol, dave]) {
      await waitUntil(() => texts(m, group.id).includes("hello from erin"), "erin heard");
    }
    assert(everyone.every((m) => inGroup(m, group.id)!.forks === 0), "no fork seen");
  });

  test("an offline member catches up on many epochs; a removed one reads no more", async (w) => {
    const [alice, bob, carol] = [
      await registered(w, "alice"),
      await registered(w, "bob"),
      await registered(w, "carol"),
    ];
    const group = await alice.client.createGroup("offline", [idOf(bob), idOf(carol)]);
    await converged([alice, bob, carol], group.id, 1);
    await carol.client.close();
    const extra = [];
    for (let i = 0; i < 3; i++) {
      const someone = await registered(w, `extra${i}`);
      extra.push(someone);
      await alice.client.addToGroup(group.id, [idOf(someone)]);
      await alice.client.sendGroupText(group.id, `while away ${i}`);
    }
    const back = await w.reopen(carol);
    back.client.connect();
    await waitUntil(() => texts(back, group.id).length === 3, "carol reads what she missed");
    await converged([alice, bob, back, ...extra], group.id, 4);

    await alice.client.removeFromGroup(group.id, [idOf(back)]);
    await waitUntil(
      () => back.events.some((e) => e.type === "group-members" && e.removedSelf),
      "carol learns she was removed",
    );
    await bob.client.sendGroupText(group.id, "after carol left");
    await waitUntil(() => texts(alice, group.id).includes("after carol left"), "alice reads");
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert(!texts(back, group.id).includes("after carol left"), "carol reads nothing new");
  });

  test("leaving: another member commits the removal", async (w) => {
    const [alice, bob, carol] = [
      await registered(w, "alice"),
      await registered(w, "bob"),
      await registered(w, "carol"),
    ];
    const group = await alice.client.createGroup("leave", [idOf(bob), idOf(carol)]);
    await converged([alice, bob, carol], group.id, 1);
    await carol.client.leaveGroup(group.id);
    await waitUntil(() => inGroup(alice, group.id)?.members.length === 2, "carol is out");
    await converged([alice, bob], group.id, 2);
    await bob.client.sendGroupText(group.id, "just us");
    await waitUntil(() => texts(alice, group.id).includes("just us"), "alice reads");
  });

  test("a newly linked device joins its account's groups and reads on", async (w) => {
    const [alice, bob] = [await registered(w, "alice"), await registered(w, "bob")];
    const group = await alice.client.createGroup("linked", [idOf(bob)]);
    await converged([alice, bob], group.id, 1);
    const phone = await w.client("alice-phone", { instance: 1 });
    const linking = await phone.client.startLinking();
    await alice.client.approveLink(linking.code);
    await linking.completed;
    phone.client.connect();
    // Alice's laptop hears the phone's hello and adds it to the group.
    await waitUntil(() => inGroup(phone, group.id) !== undefined, "the phone joins the group");
    await converged([alice, bob, phone], group.id, 2);
    await bob.client.sendGroupText(group.id, "hi phone");
    await waitUntil(() => texts(phone, group.id).includes("hi phone"), "the phone reads");
    assertEquals(inGroup(bob, group.id)!.members.length, 3);
  });

  test("the server's tables hold no group plaintext", async (w) => {
    const env = w.instances[0]!.env;
    const needles = markers.map((m) => ({
      name: "group text",
      bytes: new TextEncoder().encode(m),
    }));
    const report = backend === "embedded"
      ? scanSqlite(env.SQLITE_PATH!, needles)
      : await scanCql(env.CQL_CONTACT_POINTS!.split(","), env.CQL_KEYSPACE!, needles);
    assert(report.rows > 10, JSON.stringify(report));
    assertEquals(report.hits, []);
  });

  Deno.test({
    name: `e2e groups (${backend}): stop`,
    ...NO_SANITIZERS,
    fn: async () => {
      if (running) await (await running).stop();
    },
  });
}

groupsE2e("embedded");
groupsE2e("cluster");
