import { generateKeyPackage, MlsGroup } from "./mls.ts";
import {
  applyCommitToRoster,
  inspectKeyPackage,
  inspectPublicMessage,
  mlsGroupIdOf,
  MlsInspectError,
  type RosterEntry,
} from "./mls_inspect.ts";

function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

function assertEquals<T>(actual: T, expected: T, what: string): void {
  const a = JSON.stringify(actual, (_k, v) => typeof v === "bigint" ? `${v}n` : v);
  const e = JSON.stringify(expected, (_k, v) => typeof v === "bigint" ? `${v}n` : v);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

function assertThrowsCode(fn: () => unknown, code: string, what: string): void {
  try {
    fn();
  } catch (error) {
    if (error instanceof MlsInspectError && error.code === code) return;
    throw new Error(`${what}: expected MlsInspectError ${code}, got ${error}`);
  }
  throw new Error(`${what}: expected MlsInspectError ${code}, nothing thrown`);
}

Deno.test("server mirrors the roster from PublicMessage commits alone", async () => {
  const admin = await MlsGroup.create({ deviceAddress: "admin/1" });
  let mirror: RosterEntry[] = [{ leafIndex: 0, identity: "admin/1" }];
  const members = new Map<string, MlsGroup>();

  /** Server side: inspect, check, mirror; then the committer merges and members process. */
  const deliver = async (committer: MlsGroup) => {
    const pending = committer.pendingCommit!;
    const inspected = inspectPublicMessage(pending.commit);
    assertEquals(inspected.epoch, committer.epoch, "epoch in the clear");
    assert(
      inspected.groupId.every((b, i) => b === committer.groupId[i]),
      "group id in the clear",
    );
    assertEquals(
      inspected.sender,
      { type: "member", leafIndex: committer.ownLeafIndex },
      "sender",
    );
    mirror = applyCommitToRoster(mirror, inspected);
    committer.mergePendingCommit();
    for (const member of members.values()) {
      if (member !== committer && member.active) await member.process(pending.commit);
    }
    assertEquals(mirror, committer.roster(), "mirror matches the committer's roster");
    return { pending, inspected };
  };

  const join = async (addresses: string[]) => {
    const bundles = await Promise.all(addresses.map((a) => generateKeyPackage(a)));
    for (const [i, bundle] of bundles.entries()) {
      assertEquals(inspectKeyPackage(bundle.keyPackage).identity, addresses[i], "kp identity");
    }
    await admin.add(bundles.map((b) => b.keyPackage));
    const { pending, inspected } = await deliver(admin);
    assertEquals(
      inspected.proposals.map((p) => p.type === "add" && p.identity),
      addresses,
      "add proposals visible",
    );
    for (const [i, bundle] of bundles.entries()) {
      members.set(
        addresses[i]!,
        await MlsGroup.join(pending.welcome!, bundle.privateKeyPackage, {
          groupInfo: pending.groupInfo,
        }),
      );
    }
  };

  members.set("admin/1", admin);
  await join(["b/1", "c/1", "d/1", "e/1"]);
  assertEquals(mirror.map((m) => m.leafIndex), [0, 1, 2, 3, 4], "leaves after adds");

  // Remove two members in the middle; the next adds fill the leftmost blanks, then extend.
  await admin.remove(["c/1", "d/1"]);
  const { inspected: removal } = await deliver(admin);
  assertEquals(
    removal.proposals,
    [{ type: "remove", leafIndex: 2 }, { type: "remove", leafIndex: 3 }],
    "remove proposals visible",
  );
  assert(removal.hasPath && removal.pathIdentity === "admin/1", "remove commits carry a path");
  await join(["f/1", "g/1", "h/1"]);
  assertEquals(
    mirror,
    [
      { leafIndex: 0, identity: "admin/1" },
      { leafIndex: 1, identity: "b/1" },
      { leafIndex: 2, identity: "f/1" },
      { leafIndex: 3, identity: "g/1" },
      { leafIndex: 4, identity: "e/1" },
      { leafIndex: 5, identity: "h/1" },
    ],
    "blanks refilled left to right",
  );

  // A self-update by another member leaves the roster unchanged.
  const e = members.get("e/1")!;
  await e.update();
  const { inspected: update } = await deliver(e);
  assertEquals(update.proposals, [], "empty commit");
  assertEquals(update.sender, { type: "member", leafIndex: 4 }, "update sender");
});

Deno.test("inspection refuses what the server must not accept", async () => {
  const alice = await MlsGroup.create({ deviceAddress: "alice/1" });
  const bob = await generateKeyPackage("bob/1");
  const application = await alice.encrypt(new TextEncoder().encode("secret"));
  assertThrowsCode(() => inspectPublicMessage(application), "wrong-wire-format", "private");
  assertThrowsCode(() => inspectPublicMessage(bob.keyPackage), "wrong-wire-format", "kp");
  assertThrowsCode(() => inspectPublicMessage(new Uint8Array([0, 1, 0, 1])), "malformed", "junk");
  assertThrowsCode(() => inspectKeyPackage(application), "wrong-wire-format", "not a kp");

  await alice.add([bob.keyPackage]);
  const commit = inspectPublicMessage(alice.pendingCommit!.commit);
  const stranger: RosterEntry[] = [{ leafIndex: 7, identity: "x/1" }];
  assertThrowsCode(() => applyCommitToRoster(stranger, commit), "not-member", "non-member");
  const truncated = alice.pendingCommit!.commit.subarray(0, 40);
  assertThrowsCode(() => inspectPublicMessage(truncated), "malformed", "truncated");
});

Deno.test("the group id is read from the clear header of public and private messages", async () => {
  const group = await MlsGroup.create({ deviceAddress: "alice:phone" });
  const pending = await group.update();
  const id = (bytes: Uint8Array | undefined) => bytes && Array.from(bytes).join();
  assertEquals(id(mlsGroupIdOf(pending.commit)), id(group.groupId), "commit");
  group.mergePendingCommit();
  const message = await group.encrypt(new TextEncoder().encode("hi"));
  assertEquals(id(mlsGroupIdOf(message)), id(group.groupId), "private message");
  assertEquals(mlsGroupIdOf(await group.groupInfo()), undefined, "a GroupInfo has none here");
  assertEquals(mlsGroupIdOf(new Uint8Array([0, 1, 0, 2, 40, 1])), undefined, "truncated");
  assertEquals(mlsGroupIdOf(new Uint8Array(0)), undefined, "empty");
});
