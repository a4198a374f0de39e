/**
 * End to end through the SDK against the real services: on the embedded store, and on
 * Cassandra + NATS JetStream with two instances of every service (clients alternate between
 * them, so conversations cross instances). What is checked is what users see: messages,
 * receipts, devices, warnings - and, at the end, what the server stored.
 */

import { assert, assertEquals } from "../assert.ts";
import { deserializePrekey } from "../../crypto/mod.ts";
import { type GuardynClientError } from "../../client/mod.ts";
import { ProfileFile } from "../../client/profile_file.ts";
import { ProfileState } from "../../client/profile_state.ts";
import { fromBase64 } from "../../client/bytes.ts";
import type { Backend } from "../support/platform.ts";
import {
  bodies,
  directoryCacheExpiry,
  PASSPHRASE,
  PASSWORD,
  registered,
  startWorld,
  type TestClient,
  uniqueName,
  type World,
} from "./e2e_test_kit.ts";
import { type Needle, scanCql, scanSqlite } from "./server_tables.ts";
import { NO_SANITIZERS, waitUntil } from "../support/wait.ts";
import { keyed } from "../../services/store/conformance/record_keys.ts";

function e2eSuite(backend: Backend) {
  let running: Promise<World> | undefined;
  const world = () => running ??= startWorld(backend);
  const test = (name: string, fn: (w: World) => Promise<void>) =>
    Deno.test({
      name: `e2e (${backend}): ${name}`,
      ...NO_SANITIZERS,
      fn: async () => fn(await world()),
    });
  const idOf = (handle: TestClient) => handle.client.account!.accountId;
  const usernameOf = (handle: TestClient) => handle.client.account!.username;
  const undecryptable = (handle: TestClient) =>
    handle.events.filter((e) => e.type === "undecryptable");
  /** Handles kept for the final check of the server's tables. */
  const everyone: TestClient[] = [];

  test("first contact: PQXDH from a bundle, receipts, typing and safety numbers", async (w) => {
    const alice = await registered(w, "alice");
    const bob = await registered(w, "bob");
    everyone.push(alice, bob);
    const sent = await alice.client.sendText(usernameOf(bob), "hello bob");
    assertEquals(sent.status, "sent");
    await waitUntil(() => bodies(bob, idOf(alice)).length === 1, "bob receives");
    const [received] = bob.client.messages(idOf(alice));
    assertEquals([received!.body, received!.direction, received!.status], [
      "hello bob",
      "in",
      "unread",
    ]);
    // Alice's session came from Bob's bundle with a one-time prekey; Bob's from the handshake.
    const started = alice.events.flatMap((e) => e.type === "session" ? [e.session] : []);
    assertEquals(started.map((s) => [s.direction, s.oneTimePrekey, s.lastResortKem]), [[
      "outgoing",
      true,
      false,
    ]]);
    assert(bob.events.some((e) => e.type === "session" && e.session.direction === "incoming"));
    await waitUntil(() => alice.client.messages(idOf(bob))[0]?.status === "delivered", "delivered");

    assertEquals(await bob.client.markRead(idOf(alice)), 1);
    await waitUntil(() => alice.client.messages(idOf(bob))[0]?.status === "read", "read receipt");
    await bob.client.sendText(idOf(alice), "hi alice");
    await waitUntil(() => bodies(alice, idOf(bob)).length === 2, "alice receives the reply");
    assertEquals(bodies(alice, idOf(bob)), ["hello bob", "hi alice"]);

    // Typing travels as an ephemeral envelope to the open stream.
    assert(await alice.client.sendTyping(idOf(bob), true), "a typing envelope was sent");
    await waitUntil(
      () => bob.events.some((e) => e.type === "typing" && e.typing && e.peer === idOf(alice)),
      "bob sees alice typing",
    );
    const fromAlice = await alice.client.safetyNumber(idOf(bob));
    assertEquals(fromAlice, await bob.client.safetyNumber(idOf(alice)));
    assertEquals(fromAlice.length, 60);
    assert(await bob.client.verifySafetyNumber(idOf(alice), fromAlice.replace(/(\d{5})/g, "$1 ")));
    assert(!await alice.client.verifySafetyNumber(idOf(bob), "1".repeat(60)));
    assertEquals(bob.client.contact(idOf(alice))?.verified, true);
    assertEquals([...undecryptable(alice), ...undecryptable(bob)], []);
  });

  test("a long conversation with out-of-order delivery in both directions", async (w) => {
    const carol = await registered(w, "carol");
    const dan = await registered(w, "dan");
    everyone.push(carol, dan);
    const rounds = 3;
    const perRound = 12;
    let expectedCount = 0;
    for (let round = 0; round < rounds; round++) {
      // Each side encrypts a batch in order, then transmits it shuffled, both at once: the
      // receivers see messages out of order and across DH ratchet steps.
      const [fromCarol, fromDan] = await Promise.all([
        prepareMany(carol, idOf(dan), `c${round}`, perRound),
        prepareMany(dan, idOf(carol), `d${round}`, perRound),
      ]);
      await Promise.all([
        ...shuffle(fromCarol).map((p) => carol.client.transmit(p)),
        ...shuffle(fromDan).map((p) => dan.client.transmit(p)),
      ]);
      expectedCount += 2 * perRound;
      await waitUntil(
        () => bodies(dan, idOf(carol)).length === expectedCount,
        `dan has round ${round}`,
      );
      await waitUntil(
        () => bodies(carol, idOf(dan)).length === expectedCount,
        `carol has round ${round}`,
      );
    }
    const seenByDan = bodies(dan, idOf(carol));
    const seenByCarol = bodies(carol, idOf(dan));
    assertEquals(new Set(seenByDan).size, rounds * perRound * 2, "no duplicates");
    // Both sides order the conversation by server time: the same order on both.
    assertEquals(seenByDan, seenByCarol);
    assertEquals([...undecryptable(carol), ...undecryptable(dan)], []);
  });

  test("an offline device catches up on reconnect, without duplicates", async (w) => {
    const erin = await registered(w, "erin");
    let frank = await registered(w, "frank");
    everyone.push(erin);
    await erin.client.sendText(idOf(frank), "before");
    await waitUntil(() => bodies(frank, idOf(erin)).length === 1, "frank online receives");
    const frankId = idOf(frank);
    const frankDevice = frank.client.account!.deviceId;
    await frank.client.close();
    for (let i = 0; i < 25; i++) await erin.client.sendText(frankId, `offline ${i}`);
    const mailbox = w.instances[0]!.platform.deps.store.mailbox;
    assertEquals(
      await mailbox.count({ accountId: frankId, deviceId: frankDevice }, Date.now()),
      25,
    );
    frank = await w.reopen(frank);
    everyone.push(frank);
    frank.client.connect();
    await waitUntil(() => bodies(frank, idOf(erin)).length === 26, "frank catches up");
    assertEquals(bodies(frank, idOf(erin)), [
      "before",
      ...Array.from({ length: 25 }, (_, i) => `offline ${i}`),
    ]);
    await frank.client.flush();
    await waitUntil(
      async () =>
        await mailbox.count({ accountId: frankId, deviceId: frankDevice }, Date.now()) === 0,
      "acknowledged mail is deleted",
    );
    await waitUntil(
      () => erin.client.messages(frankId).every((m) => m.status === "delivered"),
      "erin sees every message delivered",
    );
    assertEquals(undecryptable(frank), []);
  });

  test("browser form: half-duplex clients (ReceiveEvents + Acknowledge) talk and catch up", async (w) => {
    // What a browser's fetch can hold: no bidirectional stream anywhere.
    const gwen = await registered(w, "gwen", { halfDuplex: true });
    let hank = await registered(w, "hank", { halfDuplex: true });
    everyone.push(gwen);
    await gwen.client.sendText(idOf(hank), "over fetch");
    await waitUntil(() => bodies(hank, idOf(gwen)).length === 1, "hank receives");
    await hank.client.sendText(idOf(gwen), "and back");
    // A conversation lists both directions.
    await waitUntil(() => bodies(gwen, idOf(hank)).length === 2, "gwen receives");
    // Offline, then back: the backlog arrives once and acknowledgements delete it.
    const hankId = idOf(hank);
    const hankDevice = hank.client.account!.deviceId;
    await hank.client.close();
    for (let i = 0; i < 12; i++) await gwen.client.sendText(hankId, `later ${i}`);
    hank = await w.reopen(hank, { halfDuplex: true });
    everyone.push(hank);
    hank.client.connect();
    await waitUntil(() => bodies(hank, idOf(gwen)).length === 14, "hank catches up");
    assertEquals(
      bodies(hank, idOf(gwen)).slice(2),
      Array.from({ length: 12 }, (_, i) => `later ${i}`),
    );
    await hank.client.flush();
    const mailbox = w.instances[0]!.platform.deps.store.mailbox;
    await waitUntil(
      async () =>
        await mailbox.count({ accountId: hankId, deviceId: hankDevice }, Date.now()) === 0,
      "acknowledged mail is deleted",
    );
    assertEquals([...undecryptable(gwen), ...undecryptable(hank)], []);
  });

  test("multi-device: linking, sync copies, read sync and revocation", async (w) => {
    const gina = await registered(w, "gina");
    const hank = await registered(w, "hank");
    everyone.push(gina, hank);
    // Gina links a second device: the new one shows a code, the signed-in one approves it.
    const phone = await w.client("gina-phone", { instance: 1 });
    const linking = await phone.client.startLinking();
    assert(linking.code.startsWith("gdnlink1."), linking.code);
    await gina.client.approveLink(linking.code);
    const linked = await linking.completed;
    assertEquals(linked.accountId, idOf(gina));
    assertEquals(linked.username, usernameOf(gina));
    phone.client.connect();
    everyone.push(phone);
    await waitUntil(
      () => gina.events.some((e) => e.type === "own-device" && e.deviceId === linked.deviceId),
      "the laptop hears the new device's hello",
    );
    assertEquals((await gina.client.listDevices()).length, 2);
    // The contacts Gina had verified came along with their keys.
    assertEquals(phone.client.contacts().length, gina.client.contacts().length);

    await hank.client.sendText(idOf(gina), "to both of you");
    await waitUntil(() => bodies(phone, idOf(hank)).length === 1, "the phone receives");
    await waitUntil(() => bodies(gina, idOf(hank)).length === 1, "the laptop receives");
    await phone.client.sendText(idOf(hank), "from the phone");
    await waitUntil(() => bodies(hank, idOf(gina)).length === 2, "hank receives the phone's reply");
    await waitUntil(() => bodies(gina, idOf(hank)).length === 2, "the laptop gets the sync copy");
    const copy = gina.client.messages(idOf(hank))[1]!;
    assertEquals([copy.body, copy.direction, copy.senderDeviceId], [
      "from the phone",
      "out",
      linked.deviceId,
    ]);

    // Reading on the laptop clears the phone's unread count and tells Hank.
    assertEquals(await gina.client.markRead(idOf(hank)), 1);
    await waitUntil(() => phone.client.conversations()[0]?.unread === 0, "read sync on the phone");
    await waitUntil(() => hank.client.messages(idOf(gina))[0]?.status === "read", "hank sees read");

    // Revoking the phone: it is told, wipes its profile; Hank's next message reaches the laptop
    // only (his client drops the phone's session when the server says it is gone).
    await gina.client.revokeDevice(linked.deviceId);
    await waitUntil(
      () => phone.events.some((e) => e.type === "signed-out" && e.reason === "revoked"),
      "the phone learns it was revoked",
    );
    assert(!await exists(phone.profilePath), "the revoked device wiped its profile");
    await hank.client.sendText(idOf(gina), "only the laptop now");
    await waitUntil(() => bodies(gina, idOf(hank)).length === 3, "the laptop receives");
    assertEquals(
      gina.client.messages(idOf(hank)).map((m) => m.body),
      ["to both of you", "from the phone", "only the laptop now"],
    );
  });

  test("prekey exhaustion falls back to the last-resort key; replays are refused; keys are topped up", async (w) => {
    // Ivy publishes two one-time prekeys of each kind and stays offline while four strangers
    // write to her: the last two handshakes use the last-resort ML-KEM key and no one-time key.
    const ivy = await w.client("ivy", {
      keyPolicy: { prekeyTarget: 2, prekeyLowWater: 2, keyPackageTarget: 1, keyPackageLowWater: 1 },
    });
    await ivy.client.register(uniqueName("ivy"), PASSWORD);
    everyone.push(ivy);
    const ivyId = idOf(ivy);
    const strangers: TestClient[] = [];
    for (let i = 0; i < 4; i++) {
      const stranger = await registered(w, `stranger${i}`);
      strangers.push(stranger);
      await stranger.client.sendText(ivyId, `first contact ${i}`);
    }
    const kinds = strangers.map((s) =>
      s.events.flatMap((e) =>
        e.type === "session" ? [[e.session.oneTimePrekey, e.session.lastResortKem]] : []
      )[0]
    );
    assertEquals(kinds, [[true, false], [true, false], [false, true], [false, true]]);
    // A replay: the server (or anyone who copied the traffic) puts a last-resort handshake
    // into Ivy's mailbox a second time.
    const store = w.instances[0]!.platform.deps.store;
    const ivyDevice = { accountId: ivyId, deviceId: ivy.client.account!.deviceId };
    const queued = await store.mailbox.read(ivyDevice, 0, 100, Date.now());
    assertEquals(queued.length, 4);
    const lastResortHandshake = queued[3]!;
    ivy.client.connect();
    await waitUntil(() => ivy.client.conversations().length === 4, "ivy opens all four");
    await ivy.client.flush();
    // Replayed as is, it meets the session it created: a duplicate, dropped without a trace.
    // Replayed as if from another device of the sender, no session matches: the remembered
    // base key refuses it (the last-resort key alone cannot tell).
    const replay = (clientMessageId: string, deviceId: string) =>
      store.mailbox.deliver(keyed({
        sender: { accountId: lastResortHandshake.sender.accountId, deviceId },
        clientMessageId,
        serverTimestampMs: Date.now(),
        expiresAtMs: Date.now() + 60_000,
        items: [{
          recipient: ivyDevice,
          type: lastResortHandshake.type,
          content: lastResortHandshake.content,
        }],
      }));
    await replay("replay-as-is", lastResortHandshake.sender.deviceId);
    await replay("replay-elsewhere", "another-device");
    await w.instances[0]!.platform.deps.bus.wake(ivyDevice.accountId, ivyDevice.deviceId);
    await waitUntil(
      async () => await store.mailbox.count(ivyDevice, Date.now()) === 0,
      "both replays handled and acknowledged",
    );
    assertEquals(undecryptable(ivy).length, 1);
    assert(
      (undecryptable(ivy)[0] as { reason: string }).reason.includes("replayed"),
      JSON.stringify(undecryptable(ivy)),
    );
    assertEquals(ivy.client.messages(idOf(strangers[3]!)).length, 1, "shown once");
    // Having used her one-time keys, Ivy tops them up.
    await waitUntil(() => ivy.events.some((e) => e.type === "keys-replenished"), "keys topped up");
    const report = ivy.events.find((e) => e.type === "keys-replenished")!;
    assert(
      report.type === "keys-replenished" && report.report.oneTimeAdded === 2,
      JSON.stringify(report),
    );
    // Everybody can still talk: Ivy answers the last-resort stranger.
    await ivy.client.sendText(idOf(strangers[3]!), "welcome");
    await waitUntil(
      () => bodies(strangers[3]!, ivyId).length === 2,
      "the stranger gets the answer",
    );
    for (const stranger of strangers) await stranger.client.close();
  });

  test("an identity change is shown, and blocks a verified contact until accepted", async (w) => {
    const jane = await registered(w, "jane");
    const kurt = await registered(w, "kurt");
    const leo = await registered(w, "leo");
    everyone.push(jane, leo);
    await jane.client.sendText(idOf(kurt), "hi kurt");
    await leo.client.sendText(idOf(kurt), "hi kurt, leo here");
    await waitUntil(() => kurt.client.conversations().length === 2, "kurt receives both");
    const before = await jane.client.safetyNumber(idOf(kurt));
    assert(
      await jane.client.verifySafetyNumber(idOf(kurt), await kurt.client.safetyNumber(idOf(jane))),
    );
    // Kurt loses his device and signs in on a new one, replacing the account identity key.
    const kurtName = usernameOf(kurt);
    await kurt.client.close();
    const newKurt = await w.client("kurt-new");
    everyone.push(newKurt);
    await newKurt.client.login(kurtName, PASSWORD, { resetIdentity: true });
    newKurt.client.connect();
    await directoryCacheExpiry();
    // Leo had not verified Kurt: he is warned, and the message goes to the new device.
    await leo.client.sendText(idOf(kurt), "still there?");
    assert(
      leo.events.some((e) =>
        e.type === "identity-changed" && e.peer === idOf(kurt) && !e.wasVerified
      ),
    );
    await waitUntil(
      () => bodies(newKurt, idOf(leo)).includes("still there?"),
      "the new device receives",
    );
    // Jane had verified Kurt: sending stops with IDENTITY_CHANGED until she accepts the key.
    let refused: GuardynClientError | undefined;
    try {
      await jane.client.sendText(idOf(kurt), "are you really kurt?");
    } catch (error) {
      refused = error as GuardynClientError;
    }
    assertEquals(refused?.code, "IDENTITY_CHANGED");
    assert(jane.events.some((e) => e.type === "identity-changed" && e.wasVerified));
    const after = await jane.client.safetyNumber(idOf(kurt));
    assert(after !== before, "the safety number changed");
    assertEquals(jane.client.contact(idOf(kurt))?.verified, false);
    await jane.client.trustIdentity(idOf(kurt));
    await jane.client.sendText(idOf(kurt), "welcome back");
    await waitUntil(
      () => bodies(newKurt, idOf(jane)).includes("welcome back"),
      "delivered after accepting",
    );
    assertEquals(after, await newKurt.client.safetyNumber(idOf(jane)));
  });

  test("the server's tables hold no plaintext and no private key", async (w) => {
    const marker = `PLAINTEXT-MARKER-${crypto.randomUUID()}`;
    const sender = everyone[0]!;
    // Leave ciphertext in the store: a message to a device that is offline.
    const offline = await registered(w, "offline");
    await offline.client.close();
    await sender.client.sendText(idOf(offline), `${marker} stored while offline`);
    await sender.client.sendText(idOf(everyone[1]!), `${marker} delivered`);
    const needles: Needle[] = [{
      name: "plaintext marker",
      bytes: new TextEncoder().encode(marker),
    }];
    for (const handle of [...everyone, offline]) {
      if (!await exists(handle.profilePath)) continue;
      await handle.client.close();
      needles.push(...await privateKeysOf(handle));
    }
    assert(needles.length > 20, `collected ${needles.length} secrets`);
    const env = w.instances[0]!.env;
    const report = backend === "embedded"
      ? scanSqlite(env.SQLITE_PATH!, needles)
      : await scanCql(env.CQL_CONTACT_POINTS!.split(","), env.CQL_KEYSPACE!, needles);
    console.log(
      `scanned ${report.tables} tables, ${report.rows} rows, ${report.bytes} bytes for ${needles.length} secrets`,
    );
    assert(report.rows > 50 && report.tables >= 5, JSON.stringify(report));
    assertEquals(report.hits, []);
  });

  Deno.test({
    name: `e2e (${backend}): stop`,
    ...NO_SANITIZERS,
    fn: async () => {
      if (running) await (await running).stop();
    },
  });
}

async function prepareMany(from: TestClient, to: string, prefix: string, count: number) {
  const prepared = [];
  for (let i = 0; i < count; i++) {
    prepared.push(await from.client.prepareText(to, `${prefix}-${i}`));
  }
  return prepared;
}

/** A random permutation that is never the identity (so the order really changes). */
function shuffle<T>(items: T[]): T[] {
  const out = [...items];
  while (items.length > 1 && out.every((item, i) => item === items[i])) {
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
  }
  return out;
}

async function exists(path: string): Promise<boolean> {
  return await ProfileFile.exists(path);
}

/** The private keys in a (closed) client's profile: identity, signed, one-time, KEM seeds. */
async function privateKeysOf(handle: TestClient): Promise<Needle[]> {
  const file = await ProfileFile.open(handle.profilePath, PASSPHRASE);
  try {
    const state = await ProfileState.decode(file.payload);
    const needles: Needle[] = [{
      name: `${handle.name} identity`,
      bytes: state.identity!.privateKey,
    }];
    const vault = state.prekeys.toJSON();
    for (const held of [...vault.signed, ...vault.lastResort, ...vault.oneTime, ...vault.kem]) {
      const prekey = deserializePrekey(fromBase64(held.record));
      const secret = "seed" in prekey.keyPair ? prekey.keyPair.seed : prekey.keyPair.privateKey;
      needles.push({ name: `${handle.name} ${prekey.kind} ${prekey.id}`, bytes: secret });
    }
    return needles;
  } finally {
    file.close();
  }
}

e2eSuite("embedded");
e2eSuite("cluster");
