import { generateKeyPackage, MlsGroup, suiteImplById } from "./mls.ts";
import { DeliveryCheckError, verifyCommit, verifyGroupInfo } from "./mls_delivery.ts";
import { sha256, toHex } from "./primitives.ts";

function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

async function assertCode(run: () => Promise<unknown>, code: string, what: string) {
  try {
    await run();
  } catch (error) {
    if (error instanceof DeliveryCheckError && error.code === code) return;
    throw new Error(`${what}: expected DeliveryCheckError ${code}, got ${error}`);
  }
  throw new Error(`${what}: expected DeliveryCheckError ${code}, nothing thrown`);
}

const X25519_SUITE = 1;

Deno.test("delivery check: a member's commit verifies against the published GroupInfo", async () => {
  const impl = await suiteImplById(X25519_SUITE);
  const alice = await MlsGroup.create({ deviceAddress: "alice:phone" });
  const view0 = await verifyGroupInfo(
    await alice.groupInfo(),
    { groupId: alice.groupId, epoch: 0n },
    impl,
  );
  assert(view0.members.length === 1 && view0.members[0]!.identity === "alice:phone", "roster 0");

  const bob = await generateKeyPackage("bob:laptop");
  const pending = await alice.add([bob.keyPackage]);
  const commit = await verifyCommit(pending.commit, view0, impl);
  assert(commit.sender.type === "member" && commit.sender.leafIndex === 0, "sender leaf 0");
  assert(commit.addedKeyPackageRefs[0] === toHex(sha256(bob.keyPackage)), "key package ref");

  // The GroupInfo of the new epoch names the new roster and checks the next commit.
  const view1 = await verifyGroupInfo(
    pending.groupInfo,
    { groupId: alice.groupId, epoch: 1n },
    impl,
  );
  assert(view1.members.map((m) => m.identity).join() === "alice:phone,bob:laptop", "roster 1");
  alice.mergePendingCommit();
  const next = await alice.update();
  await verifyCommit(next.commit, view1, impl);
  await assertCode(() => verifyCommit(next.commit, view0, impl), "wrong-epoch", "old view");
});

Deno.test("delivery check: forged, misaddressed and tampered input is refused", async () => {
  const impl = await suiteImplById(X25519_SUITE);
  const alice = await MlsGroup.create({ deviceAddress: "alice:phone" });
  const info = await alice.groupInfo();
  const view = await verifyGroupInfo(info, { groupId: alice.groupId, epoch: 0n }, impl);
  await assertCode(
    () => verifyGroupInfo(info, { groupId: new Uint8Array(32), epoch: 0n }, impl),
    "wrong-group",
    "another group",
  );
  await assertCode(
    () => verifyGroupInfo(info, { groupId: alice.groupId, epoch: 3n }, impl),
    "wrong-epoch",
    "another epoch",
  );
  const tamperedInfo = info.slice();
  tamperedInfo[tamperedInfo.length - 5]! ^= 1;
  await assertCode(
    () => verifyGroupInfo(tamperedInfo, { groupId: alice.groupId, epoch: 0n }, impl),
    "bad-signature",
    "a flipped signature byte",
  );

  // A commit from another group with the same epoch.
  const mallory = await MlsGroup.create({ deviceAddress: "mallory:x" });
  const foreign = await mallory.update();
  await assertCode(() => verifyCommit(foreign.commit, view, impl), "wrong-group", "foreign");

  // A commit signed by a key that is not leaf 0's in this tree: the same group id, re-created.
  const impostor = await MlsGroup.create({ deviceAddress: "alice:phone", groupId: alice.groupId });
  const forged = await impostor.update();
  await assertCode(() => verifyCommit(forged.commit, view, impl), "bad-signature", "impostor");

  // A tampered commit body breaks its signature.
  const honest = await alice.update();
  const tampered = honest.commit.slice();
  tampered[20]! ^= 1;
  try {
    await verifyCommit(tampered, view, impl);
    throw new Error("a tampered commit passed");
  } catch (error) {
    assert(error instanceof DeliveryCheckError, `tampered commit: ${error}`);
  }
  await assertCode(() => verifyCommit(new Uint8Array([1, 2, 3]), view, impl), "malformed", "junk");
  await verifyCommit(honest.commit, view, impl);
});
