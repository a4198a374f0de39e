/**
 * Prekey and key-package draining (audit finding 4): before, limits were per (requester
 * device, target device), so two attacker devices drained a victim's one-time prekeys in
 * seconds. Now one-time keys are budgeted per target device across all requesters and per
 * requesting account; past a budget the bundle still works, without one-time keys.
 */

import { assertEquals } from "../../tests/assert.ts";
import {
  type Clients,
  keyPackagesFor,
  publishKeys,
  register,
  type TestDevice,
  withAuthService,
} from "../../tests/support/accounts_test_kit.ts";
import { unary } from "../../tests/support/grpc.ts";
import type { TestPlatform } from "../../tests/support/platform.ts";
import { NO_SANITIZERS } from "../../tests/support/wait.ts";

function withAuth(
  env: Record<string, string>,
  fn: (c: Clients, platform: TestPlatform) => Promise<void>,
) {
  return withAuthService({ PREKEY_FETCH_BURST: "1000", ...env }, fn);
}

const fetchBundle = async (c: Clients, requester: TestDevice, target: TestDevice) => {
  const { bundles } = await unary(c.keys.fetchPrekeyBundles.bind(c.keys), {
    accountId: target.accountId,
    deviceId: "",
  }, requester.accessToken);
  return bundles[0]!;
};

Deno.test({
  name: "one-time budget: per target device, a spent budget still gets a working bundle",
  ...NO_SANITIZERS,
  fn: () =>
    withAuth({ ONE_TIME_CLAIMS_PER_TARGET_PER_HOUR: "2" }, async (c, platform) => {
      const victim = await register(c);
      await publishKeys(c, victim, { oneTime: 5, kem: 5 });
      const bundles = [];
      for (let i = 0; i < 3; i++) bundles.push(await fetchBundle(c, await register(c), victim));
      assertEquals(bundles.map((b) => b.oneTimePrekey !== undefined), [true, true, false]);
      const spent = bundles[2]!;
      assertEquals([spent.kyberPrekeyLastResort, spent.oneTimePrekeysExhausted], [true, true]);
      assertEquals(spent.signedPrekey?.keyId, 1);
      // Read back from the store: the third requester consumed nothing.
      const counts = await platform.platform.deps.store.auth.prekeys.counts(victim);
      assertEquals([counts.oneTimePrekeys, counts.kemPrekeys], [3, 3]);
    }),
});

Deno.test({
  name: "one-time budget: per requesting account, across targets",
  ...NO_SANITIZERS,
  fn: () =>
    withAuth({ ONE_TIME_CLAIMS_PER_ACCOUNT_PER_HOUR: "1" }, async (c) => {
      const [first, second] = [await register(c), await register(c)];
      await publishKeys(c, first, { oneTime: 2 });
      await publishKeys(c, second, { oneTime: 2 });
      const requester = await register(c);
      assertEquals((await fetchBundle(c, requester, first)).oneTimePrekey !== undefined, true);
      assertEquals((await fetchBundle(c, requester, second)).oneTimePrekey, undefined);
      // Another account still gets one: the budget is the requester's, not the target's.
      assertEquals(
        (await fetchBundle(c, await register(c), second)).oneTimePrekey !== undefined,
        true,
      );
    }),
});

Deno.test({
  name: "one-time budget: key packages past the target's budget are the last-resort one",
  ...NO_SANITIZERS,
  fn: () =>
    withAuth({ ONE_TIME_CLAIMS_PER_TARGET_PER_HOUR: "1" }, async (c) => {
      const member = await register(c);
      await publishKeys(c, member);
      const [one, two, lastResort] = await keyPackagesFor(member, 3);
      await unary(c.keys.uploadKeyPackages.bind(c.keys), {
        cipherSuite: 1,
        keyPackages: [one!, two!],
        lastResortKeyPackage: lastResort!,
        replaceExisting: false,
      }, member.accessToken);
      const claim = async () => {
        const requester = await register(c);
        const { keyPackages } = await unary(c.keys.claimKeyPackages.bind(c.keys), {
          cipherSuite: 1,
          accountIds: [member.accountId],
          devices: [],
        }, requester.accessToken);
        return keyPackages[0]!.lastResort;
      };
      assertEquals([await claim(), await claim()], [false, true]);
      const { count } = await unary(c.keys.getKeyPackageCount.bind(c.keys), {
        cipherSuite: 1,
      }, member.accessToken);
      assertEquals(count, 1);
    }),
});
