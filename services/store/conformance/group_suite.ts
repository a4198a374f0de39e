/**
 * The GroupStore conformance suite: every adapter registers it and must pass it unchanged.
 * Each test uses fresh random group ids and accounts, so adapters may share one database.
 */
import { assert, assertEquals, captureRejection } from "../../../tests/assert.ts";
import { StoreInputError } from "../errors.ts";
import type { CommitAttempt, GroupMember } from "../group_ports.ts";
import type { DeviceRef, Store } from "../ports.ts";
import { type StoreSuiteOptions, storeSuiteTest } from "./store_suite_kit.ts";

export type GroupSuiteOptions = StoreSuiteOptions;

const HOUR_MS = 3600_000;

function device(label: string): DeviceRef {
  return { accountId: `${label}-${crypto.randomUUID()}`, deviceId: "d1" };
}

function newGroupId(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(16));
}

function attempt(
  groupId: Uint8Array,
  epoch: number,
  sender: DeviceRef,
  members: GroupMember[],
  extra: { added?: DeviceRef[]; removed?: DeviceRef[]; info?: number } = {},
): CommitAttempt {
  const now = Date.now();
  return {
    groupId,
    epoch,
    members,
    groupInfo: extra.info === undefined ? new Uint8Array(0) : new Uint8Array([extra.info]),
    nowMs: now,
    retentionMs: HOUR_MS,
    commit: {
      epoch,
      commit: crypto.getRandomValues(new Uint8Array(40)),
      welcome: extra.added?.length ? new Uint8Array([9, 9]) : new Uint8Array(0),
      groupInfo: extra.added?.length ? new Uint8Array([8]) : new Uint8Array(0),
      sender,
      recordKey: crypto.getRandomValues(new Uint8Array(32)),
      added: extra.added ?? [],
      removed: extra.removed ?? [],
      serverTimestampMs: now,
    },
  };
}

/** A new group at epoch 0 with `creator` at leaf 0. */
async function created(store: Store, groupId: Uint8Array, creator: DeviceRef): Promise<void> {
  const group = { groupId, cipherSuite: 1, creator, groupInfo: new Uint8Array(0) };
  assertEquals(await store.groups.create({ ...group, nowMs: Date.now() }), true);
}

export function registerGroupSuite(options: GroupSuiteOptions): void {
  const test = storeSuiteTest(options, "groups");

  test("a group is created once, at epoch 0, with its creator at leaf 0", async (store) => {
    const alice = device("alice");
    const groupId = newGroupId();
    const group = { groupId, cipherSuite: 1, creator: alice, groupInfo: new Uint8Array([1]) };
    assertEquals(await store.groups.create({ ...group, nowMs: 1_000 }), true);
    assertEquals(await store.groups.create({ ...group, nowMs: 2_000 }), false);
    const state = await store.groups.get(groupId);
    assertEquals(state, {
      groupId,
      cipherSuite: 1,
      epoch: 0,
      members: [{ leafIndex: 0, device: alice }],
      groupInfo: new Uint8Array([1]),
      groupInfoEpoch: 0,
      createdAtMs: 1_000,
      updatedAtMs: 1_000,
      fannedOutEpoch: 0,
    });
    assertEquals(await store.groups.get(newGroupId()), undefined);
    assertEquals(await store.groups.groupsOf(alice, undefined, 10), [{ groupId, epoch: 0 }]);
  });

  test("a commit moves the epoch, the roster and the log together", async (store) => {
    const [alice, bob, carol] = [device("alice"), device("bob"), device("carol")];
    const groupId = newGroupId();
    await created(store, groupId, alice);
    const two = [{ leafIndex: 0, device: alice }, { leafIndex: 1, device: bob }];
    const first = attempt(groupId, 0, alice, two, { added: [bob], info: 7 });
    assertEquals(await store.groups.commit(first), { applied: true, epoch: 1 });
    const state = (await store.groups.get(groupId))!;
    assertEquals(state.epoch, 1);
    assertEquals(state.members, two);
    assertEquals(state.groupInfo, new Uint8Array([7]));
    assertEquals(state.groupInfoEpoch, 1);
    assertEquals(state.fannedOutEpoch, 0, "the fan-out is not done until marked");
    assertEquals(await store.groups.groupsOf(bob, undefined, 10), [{ groupId, epoch: 1 }]);

    const swap = [{ leafIndex: 0, device: alice }, { leafIndex: 1, device: carol }];
    const second = attempt(groupId, 1, alice, swap, { added: [carol], removed: [bob] });
    assertEquals(await store.groups.commit(second), { applied: true, epoch: 2 });
    assertEquals(await store.groups.groupsOf(bob, undefined, 10), []);
    assertEquals(await store.groups.groupsOf(carol, undefined, 10), [{ groupId, epoch: 2 }]);
    assertEquals((await store.groups.get(groupId))!.groupInfoEpoch, 1, "no new GroupInfo sent");

    const log = await store.groups.commits(groupId, 0, 10);
    assertEquals(log.map((c) => c.epoch), [0, 1]);
    assertEquals(log[0]!.commit, first.commit.commit);
    assertEquals(log[0]!.welcome, new Uint8Array([9, 9]));
    assertEquals(log[0]!.groupInfo, new Uint8Array([8]), "kept for the joiners");
    assertEquals(log[0]!.added, [bob]);
    assertEquals(log[1]!.removed, [bob]);
    assertEquals(log[1]!.recordKey, second.commit.recordKey);
    assertEquals((await store.groups.commits(groupId, 1, 10)).map((c) => c.epoch), [1]);

    await store.groups.markFannedOut(groupId, 0);
    assertEquals((await store.groups.get(groupId))!.fannedOutEpoch, 1);
    assertEquals((await store.groups.commits(groupId, 0, 1))[0]!.welcome, new Uint8Array(0));
  });

  test("of racing commits for one epoch exactly one wins, the others learn the epoch", async (store) => {
    const alice = device("alice");
    const groupId = newGroupId();
    await created(store, groupId, alice);
    const racers = Array.from({ length: 8 }, (_, i) => device(`racer${i}`));
    const outcomes = await Promise.all(
      racers.map((racer) =>
        store.groups.commit(attempt(groupId, 0, alice, [
          { leafIndex: 0, device: alice },
          { leafIndex: 1, device: racer },
        ], { added: [racer] }))
      ),
    );
    const winners = outcomes.filter((o) => o.applied);
    assertEquals(winners.length, 1);
    for (const outcome of outcomes) {
      if (!outcome.applied) assertEquals(outcome, { applied: false, currentEpoch: 1 });
    }
    const log = await store.groups.commits(groupId, 0, 10);
    assertEquals(log.length, 1, "only the winner is in the log");
    const state = (await store.groups.get(groupId))!;
    assertEquals(state.members[1]!.device, log[0]!.added[0]);
    // Only the winner's device ends up listed among its groups.
    const listed = await Promise.all(racers.map((r) => store.groups.groupsOf(r, undefined, 10)));
    assertEquals(listed.filter((l) => l.length > 0).length, 1);
  });

  test("a commit for a missing group or a stale epoch changes nothing", async (store) => {
    const alice = device("alice");
    const missing = await store.groups.commit(
      attempt(newGroupId(), 0, alice, [{ leafIndex: 0, device: alice }]),
    );
    assertEquals(missing, { applied: false, currentEpoch: 0, missing: true });
    const groupId = newGroupId();
    await created(store, groupId, alice);
    const future = attempt(groupId, 3, alice, [{ leafIndex: 0, device: alice }]);
    assertEquals(await store.groups.commit(future), { applied: false, currentEpoch: 0 });
    assertEquals((await store.groups.get(groupId))!.epoch, 0);
    assertEquals(await store.groups.commits(groupId, 0, 10), []);
  });

  test("groupsOf pages by group id", async (store) => {
    const alice = device("alice");
    const ids = Array.from({ length: 5 }, newGroupId);
    for (const groupId of ids) await created(store, groupId, alice);
    const first = await store.groups.groupsOf(alice, undefined, 3);
    const rest = await store.groups.groupsOf(alice, first.at(-1)!.groupId, 3);
    const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    assertEquals(
      [...first, ...rest].map((g) => hex(g.groupId)),
      ids.map(hex).sort(),
    );
  });

  test("a dropped member leaves the roster and the listing, the epoch stays", async (store) => {
    const [alice, bob] = [device("alice"), device("bob")];
    const groupId = newGroupId();
    await created(store, groupId, alice);
    const two = [{ leafIndex: 0, device: alice }, { leafIndex: 1, device: bob }];
    await store.groups.commit(attempt(groupId, 0, alice, two, { added: [bob] }));
    assertEquals(await store.groups.dropMember(groupId, bob), true);
    assertEquals(await store.groups.dropMember(groupId, bob), false);
    const state = (await store.groups.get(groupId))!;
    assertEquals([state.epoch, state.members], [1, [{ leafIndex: 0, device: alice }]]);
    assertEquals(await store.groups.groupsOf(bob, undefined, 10), []);
  });

  test("delete removes the group, its log and its listing", async (store) => {
    const alice = device("alice");
    const groupId = newGroupId();
    await created(store, groupId, alice);
    await store.groups.commit(attempt(groupId, 0, alice, [{ leafIndex: 0, device: alice }]));
    await store.groups.delete(groupId);
    assertEquals(await store.groups.get(groupId), undefined);
    assertEquals(await store.groups.commits(groupId, 0, 10), []);
    assertEquals(await store.groups.groupsOf(alice, undefined, 10), []);
  });

  test("a handed-out key package is remembered for its device until its time", async (store) => {
    const bob = device("bob");
    const [a, b, c] = ["a", "b", "c"].map((x) => x.repeat(64));
    const now = Date.now();
    await store.groups.recordClaim(bob, a!, now, now + HOUR_MS);
    await store.groups.recordClaim(bob, b!, now, now + HOUR_MS);
    assertEquals(await store.groups.claimed(bob, [a!, c!], now), new Set([a!]));
    assertEquals(await store.groups.claimed(device("carol"), [a!], now), new Set<string>());
    assertEquals(await store.groups.claimed(bob, [], now), new Set<string>());
    const error = await captureRejection(store.groups.recordClaim(bob, "nothex", now, now + 1));
    assert(error instanceof StoreInputError, String(error));
  });

  test("bad input is refused with a clear error before anything is written", async (store) => {
    const alice = device("alice");
    const groupId = newGroupId();
    const cases: [() => Promise<unknown>, string][] = [
      [() =>
        store.groups.create({
          groupId: new Uint8Array(65),
          cipherSuite: 1,
          creator: alice,
          groupInfo: new Uint8Array(0),
          nowMs: 1,
        }), "groupId"],
      [() =>
        store.groups.commit(attempt(groupId, 0, alice, [
          { leafIndex: 0, device: alice },
          { leafIndex: 0, device: device("x") },
        ])), "leaf 0 appears twice"],
      [() => store.groups.commit(attempt(groupId, 0, alice, [])), "without members"],
      [() => store.groups.commits(groupId, 0, 101), "limit"],
      [() => store.groups.groupsOf(alice, undefined, 0), "limit"],
    ];
    for (const [call, fragment] of cases) {
      const error = await captureRejection(Promise.resolve().then(call));
      assert(error instanceof StoreInputError, `expected StoreInputError, got ${String(error)}`);
      assert(error.message.includes(fragment), `"${error.message}" lacks "${fragment}"`);
    }
    assertEquals(await store.groups.get(groupId), undefined);
  });
}
