import {
  generateKeyPackage,
  GroupError,
  type GroupErrorCode,
  type IncomingMessage,
  MlsGroup,
  type MlsSuite,
} from "./mls.ts";

const text = new TextEncoder();
const untext = new TextDecoder();

function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

function assertEquals<T>(actual: T, expected: T, what: string): void {
  const a = JSON.stringify(actual, (_k, v) => typeof v === "bigint" ? `${v}n` : v);
  const e = JSON.stringify(expected, (_k, v) => typeof v === "bigint" ? `${v}n` : v);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

async function assertRejects(
  fn: () => Promise<unknown>,
  code: GroupErrorCode,
  what: string,
): Promise<void> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof GroupError && error.code === code) return;
    throw new Error(`${what}: expected GroupError ${code}, got ${error}`);
  }
  throw new Error(`${what}: expected GroupError ${code}, nothing thrown`);
}

function identities(group: MlsGroup): string[] {
  return group.roster().map((m) => m.identity);
}

/** Sends an application message from `sender` and checks every receiver reads it. */
async function chat(sender: MlsGroup, receivers: MlsGroup[], body: string): Promise<void> {
  const wire = await sender.encrypt(text.encode(body));
  const self = sender.roster().find((m) => m.leafIndex === sender.ownLeafIndex)!;
  for (const receiver of receivers) {
    const incoming = await receiver.process(wire);
    assert(incoming.kind === "application", "application message");
    assertEquals(untext.decode(incoming.plaintext), body, "plaintext");
    assertEquals(incoming.sender, self, "sender");
  }
}

/** The server accepted `committer`'s pending commit: merge it and fan it out. */
async function acceptCommit(committer: MlsGroup, others: MlsGroup[]): Promise<IncomingMessage[]> {
  const pending = committer.pendingCommit;
  assert(pending !== undefined, "commit pending");
  committer.mergePendingCommit();
  const results: IncomingMessage[] = [];
  for (const other of others) results.push(await other.process(pending.commit));
  return results;
}

async function device(address: string, suite: MlsSuite = "x25519") {
  return { address, ...(await generateKeyPackage(address, { suite })) };
}

Deno.test("four devices: add, welcome, update, remove, messages, restore mid-way", async () => {
  const alice = await MlsGroup.create({ deviceAddress: "alice/1" });
  assertEquals(alice.epoch, 0n, "new group epoch");
  const [bobKp, carolKp, daveKp] = await Promise.all([
    device("bob/1"),
    device("carol/1"),
    device("dave/1"),
  ]);

  // Alice adds Bob and Carol in one commit; both join from the same Welcome.
  const addBobCarol = await alice.add([bobKp.keyPackage, carolKp.keyPackage]);
  assertEquals(addBobCarol.epoch, 0n, "commit targets epoch 0");
  assert(addBobCarol.welcome !== undefined, "welcome for new members");
  assertEquals(alice.epoch, 0n, "pending commit does not advance the epoch");
  alice.mergePendingCommit();
  const bob = await MlsGroup.join(addBobCarol.welcome, bobKp.privateKeyPackage, {
    groupInfo: addBobCarol.groupInfo,
  });
  const carol = await MlsGroup.join(addBobCarol.welcome, carolKp.privateKeyPackage, {
    groupInfo: addBobCarol.groupInfo,
  });
  for (const g of [alice, bob, carol]) {
    assertEquals(g.epoch, 1n, "epoch after add");
    assertEquals(identities(g), ["alice/1", "bob/1", "carol/1"], "roster after add");
  }
  await chat(alice, [bob, carol], "hello from alice");
  await chat(carol, [alice, bob], "hello from carol");

  // Bob's state is saved here and restored later.
  const bobSaved = bob.export();

  // Carol rotates her keys.
  const carolUpdate = await carol.update();
  const [aliceSeesUpdate, bobSeesUpdate] = await acceptCommit(carol, [alice, bob]);
  assert(aliceSeesUpdate?.kind === "commit", "update is a commit");
  assertEquals(aliceSeesUpdate.committer?.identity, "carol/1", "committer");
  assertEquals(aliceSeesUpdate.added, [], "update adds nobody");
  assertEquals(aliceSeesUpdate.removed, [], "update removes nobody");
  assert(bobSeesUpdate?.kind === "commit", "bob sees the update");
  // (Only the restored copy of Bob sends from here on: two live copies would reuse keys.)
  await chat(alice, [bob, carol], "after update");

  // Bob restarts from his saved state and catches up on the commit he missed.
  const bobRestored = await MlsGroup.restore(bobSaved);
  assertEquals(bobRestored.epoch, 1n, "restored epoch");
  await bobRestored.process(carolUpdate.commit);
  assertEquals(bobRestored.epoch, 2n, "restored bob caught up");
  await chat(bobRestored, [alice, carol], "bob after restore");

  // Bob (restored) adds Dave.
  const addDave = await bobRestored.add([daveKp.keyPackage]);
  const [aliceSeesDave, carolSeesDave] = await acceptCommit(bobRestored, [alice, carol]);
  assert(aliceSeesDave?.kind === "commit" && carolSeesDave?.kind === "commit", "commits");
  assertEquals(aliceSeesDave.added, [{ leafIndex: 3, identity: "dave/1" }], "dave added");
  const dave = await MlsGroup.join(addDave.welcome!, daveKp.privateKeyPackage, {
    groupInfo: addDave.groupInfo,
  });
  await chat(dave, [alice, bobRestored, carol], "hi, dave here");

  // Alice removes Carol; Carol learns she is out and can no longer read or send.
  await alice.remove(["carol/1"]);
  const pendingRemove = alice.pendingCommit!;
  const [bobSeesRemove, , carolSeesRemove] = await acceptCommit(alice, [
    bobRestored,
    dave,
    carol,
  ]);
  assert(bobSeesRemove?.kind === "commit", "remove commit");
  assertEquals(bobSeesRemove.removed, [{ leafIndex: 2, identity: "carol/1" }], "carol removed");
  assert(carolSeesRemove?.kind === "commit" && carolSeesRemove.removedSelf, "carol removed");
  assert(!carol.active, "carol inactive");
  for (const g of [alice, bobRestored, dave]) {
    assertEquals(g.epoch, 4n, "epoch after remove");
    assertEquals(identities(g), ["alice/1", "bob/1", "dave/1"], "roster after remove");
  }
  const secret = await alice.encrypt(text.encode("carol must not read this"));
  await assertRejects(() => carol.process(secret), "inactive", "removed member reads");
  await assertRejects(() => carol.encrypt(text.encode("x")), "inactive", "removed member sends");
  for (const g of [bobRestored, dave]) {
    const incoming = await g.process(secret);
    assert(incoming.kind === "application", "remaining members read");
  }
  // Replaying an applied commit is refused as stale.
  await assertRejects(() => dave.process(pendingRemove.commit), "stale-epoch", "replay");
});

Deno.test("concurrent commits: the server's winner applies, the loser is discarded", async () => {
  const alice = await MlsGroup.create({ deviceAddress: "alice/1" });
  const bobKp = await device("bob/1");
  const { welcome, groupInfo } = await alice.add([bobKp.keyPackage]);
  alice.mergePendingCommit();
  const bob = await MlsGroup.join(welcome!, bobKp.privateKeyPackage, { groupInfo });

  // Both commit at epoch 1; the delivery service accepts Alice's.
  const aliceCommit = await alice.update();
  const bobCommit = await bob.update();
  assertEquals(aliceCommit.epoch, bobCommit.epoch, "same epoch");
  await assertRejects(() => bob.update(), "pending-commit", "second pending commit");
  alice.mergePendingCommit();
  const seen = await bob.process(aliceCommit.commit);
  assert(seen.kind === "commit" && seen.discardedPendingCommit, "bob's commit discarded");
  assertEquals(bob.pendingCommit, undefined, "no pending commit left");
  assertEquals(bob.epoch, alice.epoch, "same epoch after the winner");

  // Bob's losing commit, if it were delivered anyway, is refused as stale.
  await assertRejects(() => alice.process(bobCommit.commit), "stale-epoch", "stale commit");
  await chat(bob, [alice], "still in sync");
});

Deno.test("export with a pending commit, restore, merge", async () => {
  const alice = await MlsGroup.create({ deviceAddress: "alice/1" });
  const bobKp = await device("bob/1");
  const pending = await alice.add([bobKp.keyPackage]);
  const restored = await MlsGroup.restore(alice.export());
  assertEquals(restored.pendingCommit?.epoch, 0n, "pending epoch restored");
  assert(restored.pendingCommit?.welcome !== undefined, "pending welcome restored");
  restored.mergePendingCommit();
  const bob = await MlsGroup.join(pending.welcome!, bobKp.privateKeyPackage, {
    groupInfo: pending.groupInfo,
  });
  await chat(restored, [bob], "restored and merged");
  await chat(bob, [restored], "reply");
});

Deno.test("wrong inputs are refused with clear errors", async () => {
  const alice = await MlsGroup.create({ deviceAddress: "alice/1" });
  const other = await MlsGroup.create({ deviceAddress: "mallory/1" });
  const bobKp = await device("bob/1");
  await assertRejects(() => alice.process(bobKp.keyPackage), "wrong-wire-format", "key package");
  await assertRejects(() => alice.process(new Uint8Array([1, 2, 3])), "malformed", "garbage");
  await assertRejects(
    async () => alice.process(await other.encrypt(text.encode("x"))),
    "wrong-group",
    "other group",
  );
  await assertRejects(() => alice.remove(["nobody/1"]), "not-member", "remove stranger");
  await assertRejects(() => alice.remove(["alice/1"]), "invalid-argument", "remove self");
  await assertRejects(() => alice.add([]), "invalid-argument", "empty add");
  await assertRejects(
    () => MlsGroup.create({ deviceAddress: "" }),
    "invalid-argument",
    "empty address",
  );
  await assertRejects(() => MlsGroup.restore(new Uint8Array(10)), "malformed", "bad state");

  // A key directory hook can refuse a device.
  const strict = await MlsGroup.create({
    deviceAddress: "alice/1",
    validateMember: (identity) => identity.startsWith("alice/"),
  });
  await assertRejects(() => strict.add([bobKp.keyPackage]), "rejected", "unknown device");
});

Deno.test("X-Wing suite: create, add, message", async () => {
  const alice = await MlsGroup.create({ deviceAddress: "alice/1", suite: "xwing" });
  const bobKp = await device("bob/1", "xwing");
  const x25519Kp = await device("carol/1");
  await assertRejects(() => alice.add([x25519Kp.keyPackage]), "invalid-argument", "suite mix");
  const { welcome, groupInfo } = await alice.add([bobKp.keyPackage]);
  alice.mergePendingCommit();
  const bob = await MlsGroup.join(welcome!, bobKp.privateKeyPackage, { groupInfo });
  assertEquals(bob.suite, "xwing", "suite");
  await chat(alice, [bob], "post-quantum hello");
  await chat(bob, [alice], "post-quantum reply");
  const restored = await MlsGroup.restore(bob.export());
  await chat(alice, [restored], "after restore");
});
