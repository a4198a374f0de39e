/**
 * Conformance suite of the auth storage ports: every adapter runs it. Each test uses fresh
 * random ids, so adapters may share one database across tests (CQL schema changes are slow).
 */

import { assert, assertEquals, assertRejects, captureRejection } from "../../../tests/assert.ts";
import {
  type Account,
  type AuthStores,
  type Device,
  DeviceLimitError,
  KeyLimitError,
  type OneTimePrekey,
  type RefreshTokenRecord,
  UsernameTakenError,
} from "../auth_ports.ts";
import type { DeviceRef } from "../ports.ts";
import { NO_SANITIZERS } from "../../../tests/support/wait.ts";

export interface AuthSuiteTarget {
  stores: AuthStores;
  close(): Promise<void>;
}

const id = () => crypto.randomUUID();
const bytes = (n: number, fill = 0) => new Uint8Array(n).fill(fill);
const randomBytes = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const uniqueName = () => `u_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;

function account(overrides: Partial<Account> = {}): Account {
  return {
    id: id(),
    username: uniqueName(),
    passwordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
    createdAtMs: Date.now(),
    ...overrides,
  };
}

function device(accountId: string, overrides: Partial<Device> = {}): Device {
  const now = Date.now();
  return {
    accountId,
    id: id(),
    name: "laptop",
    platform: 1,
    registrationId: 4242,
    createdAtMs: now,
    lastSeenAtMs: now,
    ...overrides,
  };
}

function otk(keyId: number, signed = false): OneTimePrekey {
  return {
    keyId,
    publicKey: randomBytes(33),
    ...(signed ? { signature: randomBytes(64) } : {}),
  };
}

export function authStoreSuite(adapter: string, open: () => Promise<AuthSuiteTarget>) {
  const test = (name: string, fn: (stores: AuthStores) => Promise<void>) =>
    Deno.test({
      name: `auth store (${adapter}): ${name}`,
      ...NO_SANITIZERS,
      fn: async () => {
        const target = await open();
        try {
          await fn(target.stores);
        } finally {
          await target.close();
        }
      },
    });

  test("accounts: create, read by id and username, unique usernames", async (s) => {
    const a = account();
    await s.accounts.create(a);
    assertEquals((await s.accounts.byId(a.id))?.username, a.username);
    assertEquals((await s.accounts.byUsername(a.username))?.id, a.id);
    assertEquals(await s.accounts.byUsername(uniqueName()), undefined);
    await assertRejects(
      () => s.accounts.create(account({ username: a.username })),
      UsernameTakenError,
    );
  });

  test("accounts: 20 racing registrations of one username: exactly one wins", async (s) => {
    const username = uniqueName();
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => s.accounts.create(account({ username }))),
    );
    const won = results.filter((r) => r.status === "fulfilled").length;
    assertEquals(won, 1);
    for (const r of results) {
      if (r.status === "rejected") assert(r.reason instanceof UsernameTakenError, String(r.reason));
    }
    const winner = await s.accounts.byUsername(username);
    assert(winner);
  });

  test("accounts: password hash and identity key (set once, replace explicitly)", async (s) => {
    const a = account();
    await s.accounts.create(a);
    await s.accounts.setPasswordHash(a.id, "$argon2id$new");
    assertEquals((await s.accounts.byId(a.id))?.passwordHash, "$argon2id$new");
    const key = randomBytes(33);
    assertEquals(await s.accounts.setIdentityKey(a.id, key, false, 1000), "set");
    assertEquals(await s.accounts.setIdentityKey(a.id, key, false, 1000), "unchanged");
    assertEquals(await s.accounts.setIdentityKey(a.id, randomBytes(33), false, 1000), "conflict");
    assertEquals((await s.accounts.byId(a.id))?.identityKey, key);
    assertEquals((await s.accounts.byId(a.id))?.identityKeyChangedAtMs, 1000);
    const next = randomBytes(33);
    assertEquals(await s.accounts.setIdentityKey(a.id, next, true, 1000), "set");
    assertEquals((await s.accounts.byId(a.id))?.identityKey, next);
  });

  test("accounts: prefix search is bounded, ordered and paginated", async (s) => {
    const prefix = `p${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`;
    const names = Array.from({ length: 7 }, (_, i) => `${prefix}_${i}`);
    for (const username of names) await s.accounts.create(account({ username }));
    await s.accounts.create(account({ username: `q${prefix}` }));
    const page1 = await s.accounts.searchByPrefix(prefix, "", 3);
    assertEquals(page1.map((a) => a.username), names.slice(0, 3));
    const page2 = await s.accounts.searchByPrefix(prefix, page1.at(-1)!.username, 3);
    assertEquals(page2.map((a) => a.username), names.slice(3, 6));
    const page3 = await s.accounts.searchByPrefix(prefix, page2.at(-1)!.username, 3);
    assertEquals(page3.map((a) => a.username), names.slice(6));
    await assertRejects(() => s.accounts.searchByPrefix(prefix, "", 101));
  });

  test("devices: create, list, rename, touch, remove, and the per-account cap", async (s) => {
    const a = account();
    await s.accounts.create(a);
    const first = device(a.id, { createdAtMs: 1000 });
    const second = device(a.id, { createdAtMs: 2000, name: "phone" });
    await s.devices.create(first, 3);
    await s.devices.create(second, 3);
    assertEquals((await s.devices.list(a.id)).map((d) => d.id), [first.id, second.id]);
    assert(await s.devices.rename(a.id, second.id, "work phone"));
    assertEquals((await s.devices.get(a.id, second.id))?.name, "work phone");
    assert(!await s.devices.rename(a.id, id(), "ghost"));
    assert(
      await s.devices.reinstall(a.id, second.id, { registrationId: 7, name: "new", platform: 2 }),
    );
    const reinstalled = await s.devices.get(a.id, second.id);
    assertEquals([reinstalled?.registrationId, reinstalled?.name, reinstalled?.platform], [
      7,
      "new",
      2,
    ]);
    await s.devices.touch(a.id, first.id, 5000);
    assertEquals((await s.devices.get(a.id, first.id))?.lastSeenAtMs, 5000);
    await s.devices.create(device(a.id), 3);
    await assertRejects(() => s.devices.create(device(a.id), 3), DeviceLimitError);
    assert(await s.devices.remove(a.id, second.id));
    assert(!await s.devices.remove(a.id, second.id));
    assertEquals(await s.devices.get(a.id, second.id), undefined);
    await s.devices.create(device(a.id), 3);
    assertEquals((await s.devices.list(a.id)).length, 3);
    // Another account's device is not visible under this account.
    assertEquals(await s.devices.get(id(), first.id), undefined);
  });

  test("refresh tokens: rotate once; reuse revokes the family", async (s) => {
    const familyId = id();
    const record = (hash: Uint8Array): RefreshTokenRecord => ({
      tokenHash: hash,
      familyId,
      accountId: "acct",
      deviceId: "dev",
      expiresAtMs: Date.now() + 60_000,
    });
    const t1 = randomBytes(32);
    const t2 = randomBytes(32);
    const t3 = randomBytes(32);
    await s.refreshTokens.insert(record(t1));
    const rotated = await s.refreshTokens.rotate(
      t1,
      { tokenHash: t2, expiresAtMs: Date.now() + 60_000 },
      Date.now(),
    );
    assert(rotated.kind === "rotated");
    assertEquals(rotated.record.familyId, familyId);
    assertEquals(rotated.record.tokenHash, t2);
    assertEquals([rotated.record.accountId, rotated.record.deviceId], ["acct", "dev"]);
    assertEquals(await s.refreshTokens.familyRevoked(familyId), false);
    // t1 used again: theft suspected, the family (including t2) is revoked.
    assertEquals((await s.refreshTokens.rotate(t1, record(t3), Date.now())).kind, "reused");
    assertEquals(await s.refreshTokens.familyRevoked(familyId), true);
    assertEquals((await s.refreshTokens.rotate(t2, record(t3), Date.now())).kind, "reused");
    assertEquals(
      (await s.refreshTokens.rotate(randomBytes(32), record(t3), Date.now())).kind,
      "unknown",
    );
  });

  test("refresh tokens: concurrent rotations of one token: exactly one succeeds", async (s) => {
    const familyId = id();
    const base = { familyId, accountId: "acct", deviceId: "dev", expiresAtMs: Date.now() + 60_000 };
    const t1 = randomBytes(32);
    await s.refreshTokens.insert({ ...base, tokenHash: t1 });
    const outcomes = await Promise.all(
      Array.from(
        { length: 10 },
        () => s.refreshTokens.rotate(t1, { ...base, tokenHash: randomBytes(32) }, Date.now()),
      ),
    );
    assertEquals(outcomes.filter((o) => o.kind === "rotated").length, 1);
  });

  test("refresh tokens: expired tokens and revoked devices", async (s) => {
    const base = { familyId: id(), accountId: id(), deviceId: id() };
    const old = randomBytes(32);
    await s.refreshTokens.insert({ ...base, tokenHash: old, expiresAtMs: Date.now() - 1 });
    assertEquals(
      (await s.refreshTokens.rotate(old, {
        ...base,
        tokenHash: randomBytes(32),
        expiresAtMs: Date.now() + 1000,
      }, Date.now()))
        .kind,
      "expired",
    );
    const live = randomBytes(32);
    await s.refreshTokens.insert({
      ...base,
      familyId: id(),
      tokenHash: live,
      expiresAtMs: Date.now() + 60_000,
    });
    await s.refreshTokens.revokeDevice(base.accountId, base.deviceId);
    const after = await s.refreshTokens.rotate(live, {
      ...base,
      tokenHash: randomBytes(32),
      expiresAtMs: Date.now() + 1000,
    }, Date.now());
    assert(after.kind === "unknown" || after.kind === "reused", after.kind);
  });

  test("prekeys: signed prekey, one-time keys, last-resort KEM key and counts", async (s) => {
    const dev: DeviceRef = { accountId: id(), deviceId: id() };
    assertEquals(await s.prekeys.counts(dev), {
      oneTimePrekeys: 0,
      kemPrekeys: 0,
      signedPrekeyId: 0,
      signedPrekeyUploadedAtMs: 0,
      hasLastResortKemPrekey: false,
    });
    const signed = { keyId: 7, publicKey: randomBytes(33), signature: randomBytes(64) };
    await s.prekeys.setSignedPrekey(dev, signed, 2000);
    assertEquals(await s.prekeys.addOneTime(dev, "ec", [otk(1), otk(2)], 100), 2);
    assertEquals(await s.prekeys.addOneTime(dev, "kem", [otk(10, true)], 100), 1);
    const lastResort = otk(99, true);
    await s.prekeys.setLastResortKem(dev, lastResort);
    assertEquals(await s.prekeys.counts(dev), {
      oneTimePrekeys: 2,
      kemPrekeys: 1,
      signedPrekeyId: 7,
      signedPrekeyUploadedAtMs: 2000,
      hasLastResortKemPrekey: true,
    });
    // Without one-time keys: a working bundle (signed + last resort) that consumes nothing.
    const spare = await s.prekeys.claimBundle(dev, { oneTime: false });
    assertEquals(spare.signedPrekey, signed);
    assertEquals([spare.oneTimePrekey, spare.kemPrekey?.keyId], [undefined, 99]);
    assertEquals(spare.kemPrekey?.lastResort, true);
    assertEquals((await s.prekeys.counts(dev)).oneTimePrekeys, 2);
    assertEquals((await s.prekeys.counts(dev)).kemPrekeys, 1);
    const b1 = await s.prekeys.claimBundle(dev);
    assertEquals(b1.signedPrekey, signed);
    assert(b1.oneTimePrekey && [1, 2].includes(b1.oneTimePrekey.keyId));
    assertEquals(b1.kemPrekey?.keyId, 10);
    assertEquals(b1.kemPrekey?.lastResort, false);
    const b2 = await s.prekeys.claimBundle(dev);
    assert(b2.oneTimePrekey && b2.oneTimePrekey.keyId !== b1.oneTimePrekey.keyId);
    assertEquals(b2.kemPrekey?.keyId, 99);
    assertEquals(b2.kemPrekey?.lastResort, true);
    const b3 = await s.prekeys.claimBundle(dev);
    assertEquals(b3.oneTimePrekey, undefined);
    assertEquals(b3.kemPrekey?.keyId, 99, "the last-resort key is never consumed");
    assertEquals((await s.prekeys.counts(dev)).oneTimePrekeys, 0);
    // A later signed prekey replaces the former.
    const rotated = { keyId: 8, publicKey: randomBytes(33), signature: randomBytes(64) };
    await s.prekeys.setSignedPrekey(dev, rotated, 2000);
    assertEquals((await s.prekeys.claimBundle(dev)).signedPrekey, rotated);
  });

  test("prekeys: uploads beyond the per-device limit add nothing", async (s) => {
    const dev: DeviceRef = { accountId: id(), deviceId: id() };
    await s.prekeys.addOneTime(dev, "ec", Array.from({ length: 8 }, (_, i) => otk(i)), 10);
    await assertRejects(
      () => s.prekeys.addOneTime(dev, "ec", Array.from({ length: 3 }, (_, i) => otk(100 + i)), 10),
      KeyLimitError,
    );
    assertEquals((await s.prekeys.counts(dev)).oneTimePrekeys, 8);
    // Re-uploading existing ids replaces them and does not count twice.
    assertEquals(await s.prekeys.addOneTime(dev, "ec", [otk(0), otk(1)], 10), 8);
    // Replacing drops every stored key of that kind first.
    assertEquals(await s.prekeys.addOneTime(dev, "ec", [otk(500)], 10, true), 1);
    assertEquals((await s.prekeys.claimBundle(dev)).oneTimePrekey?.keyId, 500);
  });

  test("prekeys: 100 concurrent claims on 50 one-time keys: 50 distinct keys, then last resort", async (s) => {
    const dev: DeviceRef = { accountId: id(), deviceId: id() };
    await s.prekeys.setSignedPrekey(dev, {
      keyId: 1,
      publicKey: bytes(33, 5),
      signature: bytes(64, 6),
    }, 2000);
    await s.prekeys.addOneTime(dev, "ec", Array.from({ length: 50 }, (_, i) => otk(i + 1)), 500);
    await s.prekeys.addOneTime(
      dev,
      "kem",
      Array.from({ length: 50 }, (_, i) => otk(i + 1, true)),
      500,
    );
    await s.prekeys.setLastResortKem(dev, otk(1000, true));
    const bundles = await Promise.all(
      Array.from({ length: 100 }, () => s.prekeys.claimBundle(dev)),
    );
    const ecIds = bundles.flatMap((b) => (b.oneTimePrekey ? [b.oneTimePrekey.keyId] : []));
    assertEquals(ecIds.length, 50, "exactly the 50 one-time keys are handed out");
    assertEquals(new Set(ecIds).size, 50, "never the same key twice");
    const kemOneTime = bundles.filter((b) => b.kemPrekey && !b.kemPrekey.lastResort);
    assertEquals(new Set(kemOneTime.map((b) => b.kemPrekey!.keyId)).size, 50);
    assertEquals(bundles.filter((b) => b.kemPrekey?.lastResort).length, 50);
    assertEquals(await s.prekeys.counts(dev), {
      oneTimePrekeys: 0,
      kemPrekeys: 0,
      signedPrekeyId: 1,
      signedPrekeyUploadedAtMs: 2000,
      hasLastResortKemPrekey: true,
    });
  });

  test("key packages: claim once each, then the last-resort package", async (s) => {
    const dev: DeviceRef = { accountId: id(), deviceId: id() };
    assertEquals(await s.keyPackages.claim(dev, 1), undefined);
    await s.keyPackages.add(dev, 1, [
      { ref: "kp1", data: randomBytes(300) },
      { ref: "kp2", data: randomBytes(300) },
    ], 10);
    await s.keyPackages.setLastResort(dev, 1, { ref: "last", data: randomBytes(300) });
    assertEquals(await s.keyPackages.count(dev, 1), { count: 2, hasLastResort: true });
    // Without one-time packages: the last-resort one, and nothing consumed.
    assertEquals((await s.keyPackages.claim(dev, 1, { oneTime: false }))?.ref, "last");
    assertEquals(await s.keyPackages.count(dev, 1), { count: 2, hasLastResort: true });
    const claims = await Promise.all(Array.from({ length: 6 }, () => s.keyPackages.claim(dev, 1)));
    const regular = claims.filter((c) => c && !c.lastResort).map((c) => c!.ref).sort();
    assertEquals(regular, ["kp1", "kp2"]);
    assertEquals(claims.filter((c) => c?.lastResort).length, 4);
    assertEquals(await s.keyPackages.count(dev, 1), { count: 0, hasLastResort: true });
    assertEquals(await s.keyPackages.add(dev, 1, [{ ref: "kp3", data: bytes(10) }], 10, true), 1);
    assertEquals(await s.keyPackages.add(dev, 1, [{ ref: "kp4", data: bytes(10) }], 10, true), 1);
    assertEquals((await s.keyPackages.claim(dev, 1))?.ref, "kp4");
    // Suites are separate stocks.
    assertEquals(await s.keyPackages.claim(dev, 2), undefined);
    await assertRejects(
      () =>
        s.keyPackages.add(
          dev,
          1,
          Array.from({ length: 11 }, (_, i) => ({ ref: `x${i}`, data: bytes(10) })),
          10,
        ),
      KeyLimitError,
    );
  });

  test("provisioning: fill once, consume once, expiry", async (s) => {
    const now = Date.now();
    const session = { id: id(), waitSecretHash: randomBytes(32), expiresAtMs: now + 60_000 };
    await s.provisioning.create(session);
    assertEquals((await s.provisioning.get(session.id, now))?.sealedBlob, undefined);
    const fill = { sealedBlob: randomBytes(200), accountId: id(), linkTokenHash: randomBytes(32) };
    assert(await s.provisioning.fill(session.id, fill, now));
    assert(!await s.provisioning.fill(session.id, { ...fill, sealedBlob: randomBytes(10) }, now));
    assertEquals((await s.provisioning.get(session.id, now))?.sealedBlob, fill.sealedBlob);
    const consumed = await Promise.all([
      s.provisioning.consume(session.id, now),
      s.provisioning.consume(session.id, now),
    ]);
    assertEquals(consumed.filter((c) => c !== undefined).length, 1);
    assertEquals(consumed.find((c) => c)?.accountId, fill.accountId);

    const expired = { id: id(), waitSecretHash: randomBytes(32), expiresAtMs: now - 1 };
    await s.provisioning.create(expired);
    assertEquals(await s.provisioning.get(expired.id, now), undefined);
    assert(!await s.provisioning.fill(expired.id, fill, now));
    assert(await s.provisioning.purgeExpired(now, 100) >= 1);
  });

  test("account deletion removes devices, keys, key packages and refresh tokens", async (s) => {
    const a = account();
    await s.accounts.create(a);
    const d = device(a.id);
    await s.devices.create(d, 10);
    const dev = { accountId: a.id, deviceId: d.id };
    await s.prekeys.setSignedPrekey(dev, {
      keyId: 1,
      publicKey: randomBytes(33),
      signature: randomBytes(64),
    }, 2000);
    await s.prekeys.addOneTime(dev, "ec", [otk(1)], 10);
    await s.keyPackages.add(dev, 1, [{ ref: "kp", data: randomBytes(50) }], 10);
    const token = randomBytes(32);
    const base = {
      familyId: id(),
      accountId: a.id,
      deviceId: d.id,
      expiresAtMs: Date.now() + 60_000,
    };
    await s.refreshTokens.insert({ ...base, tokenHash: token });
    await s.accounts.delete(a.id);
    assertEquals(await s.accounts.byId(a.id), undefined);
    assertEquals(await s.accounts.byUsername(a.username), undefined);
    assertEquals(await s.devices.list(a.id), []);
    assertEquals(await s.prekeys.counts(dev), {
      oneTimePrekeys: 0,
      kemPrekeys: 0,
      signedPrekeyId: 0,
      signedPrekeyUploadedAtMs: 0,
      hasLastResortKemPrekey: false,
    });
    assertEquals((await s.keyPackages.count(dev, 1)).count, 0);
    const after = await s.refreshTokens.rotate(
      token,
      { ...base, tokenHash: randomBytes(32) },
      Date.now(),
    );
    assert(after.kind !== "rotated");
    // The username is free again.
    await s.accounts.create(account({ username: a.username }));
  });

  test("device removal removes its keys, key packages and refresh tokens only", async (s) => {
    const a = account();
    await s.accounts.create(a);
    const keep = device(a.id);
    const drop = device(a.id);
    await s.devices.create(keep, 10);
    await s.devices.create(drop, 10);
    for (const d of [keep, drop]) {
      const dev = { accountId: a.id, deviceId: d.id };
      await s.prekeys.addOneTime(dev, "ec", [otk(1), otk(2)], 10);
      await s.keyPackages.add(dev, 1, [{ ref: "kp", data: randomBytes(50) }], 10);
    }
    await s.devices.clearKeys(a.id, keep.id);
    assertEquals(
      (await s.prekeys.counts({ accountId: a.id, deviceId: keep.id })).oneTimePrekeys,
      0,
    );
    await s.prekeys.addOneTime({ accountId: a.id, deviceId: keep.id }, "ec", [otk(1), otk(2)], 10);
    await s.keyPackages.add({ accountId: a.id, deviceId: keep.id }, 1, [{
      ref: "kp",
      data: randomBytes(50),
    }], 10);
    await s.devices.remove(a.id, drop.id);
    assertEquals(
      (await s.prekeys.counts({ accountId: a.id, deviceId: drop.id })).oneTimePrekeys,
      0,
    );
    assertEquals((await s.keyPackages.count({ accountId: a.id, deviceId: drop.id }, 1)).count, 0);
    assertEquals(
      (await s.prekeys.counts({ accountId: a.id, deviceId: keep.id })).oneTimePrekeys,
      2,
    );
    assertEquals((await s.keyPackages.count({ accountId: a.id, deviceId: keep.id }, 1)).count, 1);
  });

  test("input limits give clear errors", async (s) => {
    const error = await captureRejection(s.accounts.searchByPrefix("", "", 10));
    assert(error instanceof Error && /prefix/.test(error.message), String(error));
  });
}
