/** The PresenceStore conformance suite: every adapter registers it and passes it unchanged. */
import { assert, assertEquals, captureRejection } from "../../../tests/assert.ts";
import { StoreInputError } from "../errors.ts";
import type { PresenceGrantRecord } from "../presence_ports.ts";
import { type StoreSuiteOptions, storeSuiteTest } from "./store_suite_kit.ts";

export type PresenceSuiteOptions = StoreSuiteOptions;

const account = () => `acct-${crypto.randomUUID()}`;
const hash = (byte: number) => new Uint8Array(32).fill(byte);
const grant = (byte: number, level: PresenceGrantRecord["level"] = "online") => ({
  hash: hash(byte),
  level,
  createdAtMs: 1_000,
});

export function registerPresenceSuite(options: PresenceSuiteOptions): void {
  const test = storeSuiteTest(options, "presence");

  test("status and activity are kept apart; activity never moves back", async (store) => {
    const a = account();
    assertEquals(await store.presence.touch(a, 5_000), undefined);
    assertEquals((await store.presence.states([a])).get(a), {
      accountId: a,
      status: "online",
      customText: "",
      lastActiveMs: 5_000,
    });
    const before = await store.presence.setStatus(a, "busy", "in a meeting");
    assertEquals(before?.lastActiveMs, 5_000);
    assertEquals((await store.presence.touch(a, 4_000))?.status, "busy");
    assertEquals((await store.presence.touch(a, 9_000))?.lastActiveMs, 5_000);
    const b = account();
    await store.presence.setStatus(b, "invisible", "");
    const states = await store.presence.states([a, b, account()]);
    assertEquals(states.size, 2);
    assertEquals(states.get(a), {
      accountId: a,
      status: "busy",
      customText: "in a meeting",
      lastActiveMs: 9_000,
    });
    assertEquals(states.get(b)?.status, "invisible");
    assertEquals(states.get(b)?.lastActiveMs, 0);
  });

  test("grants: levels by hash per owner, limit, paging, revoke", async (store) => {
    const owner = account();
    const other = account();
    await store.presence.grant(owner, [grant(1), grant(2, "last-seen"), grant(3)], 4);
    assertEquals(
      await store.presence.grantLevels([
        { ownerId: owner, hash: hash(2) },
        { ownerId: owner, hash: hash(9) },
        { ownerId: other, hash: hash(1) },
        { ownerId: owner, hash: hash(1) },
      ]),
      ["last-seen", undefined, undefined, "online"],
    );
    // A hash granted again changes level and does not count twice.
    await store.presence.grant(owner, [grant(1, "last-seen"), grant(4)], 4);
    const refused = await captureRejection(store.presence.grant(owner, [grant(5)], 4));
    assert(refused instanceof StoreInputError, "over the limit is refused");
    assertEquals(
      (await store.presence.grantLevels([{ ownerId: owner, hash: hash(5) }]))[0],
      undefined,
    );
    const first = await store.presence.listGrants(owner, new Uint8Array(), 3);
    assertEquals(first.map((g) => g.hash[0]), [1, 2, 3]);
    assertEquals(first[0]?.level, "last-seen");
    const second = await store.presence.listGrants(owner, first[2]!.hash, 3);
    assertEquals(second.map((g) => g.hash[0]), [4]);
    const revoked = await store.presence.revoke(owner, [hash(2), hash(7)]);
    assertEquals(revoked.map((h) => h[0]), [2]);
    assertEquals(
      (await store.presence.grantLevels([{ ownerId: owner, hash: hash(2) }]))[0],
      undefined,
    );
    const rest = await store.presence.revoke(owner, "all");
    assertEquals(rest.map((h) => h[0]).sort(), [1, 3, 4]);
    assertEquals(await store.presence.listGrants(owner, new Uint8Array(), 10), []);
  });

  test("purge removes the state and the grants", async (store) => {
    const owner = account();
    await store.presence.touch(owner, 1_000);
    await store.presence.grant(owner, [grant(1)], 10);
    await store.presence.purgeAccount(owner);
    assertEquals((await store.presence.states([owner])).size, 0);
    assertEquals(await store.presence.listGrants(owner, new Uint8Array(), 10), []);
  });

  test("bad input is refused before anything is written", async (store) => {
    const owner = account();
    const bad = [
      () => store.presence.setStatus(owner, "away", "x".repeat(141)),
      () => store.presence.setStatus(owner, "away", "line\nbreak"),
      () => store.presence.setStatus(owner, "sleeping" as never, ""),
      () => store.presence.touch("", 1),
      () => store.presence.touch(owner, -1),
      () => store.presence.grant(owner, [{ ...grant(1), hash: new Uint8Array(31) }], 10),
      () => store.presence.grant(owner, [{ ...grant(1), level: "all" as never }], 10),
      () => store.presence.grant(owner, [], 10),
      () => store.presence.grant(owner, Array.from({ length: 101 }, (_, i) => grant(i)), 1000),
      () => store.presence.states(Array.from({ length: 201 }, account)),
      () => store.presence.listGrants(owner, new Uint8Array(), 0),
      () => store.presence.listGrants(owner, new Uint8Array(), 1002),
    ];
    for (const call of bad) {
      assert(await captureRejection(call()) instanceof StoreInputError);
    }
    assertEquals((await store.presence.states([owner])).size, 0);
    assertEquals(await store.presence.listGrants(owner, new Uint8Array(), 10), []);
  });
}
