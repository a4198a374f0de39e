/**
 * Authorization matrix: every non-public RPC of the auth service called with no token, a
 * malformed token, an expired token, a token of another key, another account's token and a
 * revoked device's token. Each gets the right status, and Alice's state is unchanged after.
 */

import * as grpc from "@grpc/grpc-js";
import { encodePublicKey, generateIdentityKeyPair } from "../../crypto/keys.ts";
import { TokenIssuer } from "../platform/tokens.ts";
import { generateTokenKeyFile, importTokenKeys } from "../platform/tokens.ts";
import { assert, assertEquals } from "../../tests/assert.ts";
import { failure, unary } from "../../tests/support/grpc.ts";
import { startPlatform } from "../../tests/support/platform.ts";
import {
  clients,
  login,
  PASSWORD,
  publishKeys,
  register,
} from "../../tests/support/accounts_test_kit.ts";
import { NO_SANITIZERS } from "../../tests/support/wait.ts";

Deno.test({
  name: "auth service: authorization matrix over every authenticated RPC",
  ...NO_SANITIZERS,
  fn: async () => {
    const platform = await startPlatform(["auth"], { env: { REGISTRATION_BURST: "1000" } });
    const c = clients(platform.address);
    try {
      const alice = await register(c);
      await publishKeys(c, alice, { oneTime: 2, kem: 1 });
      const alicePhone = await login(c, alice.username, "phone");
      const mallory = await register(c);
      const revoked = await login(c, mallory.username, "old phone");
      await unary(
        c.auth.revokeDevice.bind(c.auth),
        { deviceId: revoked.deviceId },
        mallory.accessToken,
      );

      const { config, tokenKeys } = platform.platform.deps;
      const past = new TokenIssuer(tokenKeys, config.hosts.api, 60, () => Date.now() - 3_600_000);
      const expired =
        (await past.issue({ accountId: alice.accountId, deviceId: alice.deviceId })).token;
      const foreignKeys = await importTokenKeys(await generateTokenKeyFile());
      const foreign = (await new TokenIssuer(foreignKeys, config.hosts.api, 600)
        .issue({ accountId: alice.accountId, deviceId: alice.deviceId })).token;
      const newIdentity = encodePublicKey((await generateIdentityKeyPair()).publicKey);

      // Each call targets Alice's account or devices where the RPC takes a target.
      const calls: Record<string, (token: string | undefined) => Promise<unknown>> = {
        logout: (t) => unary(c.auth.logout.bind(c.auth), { allDevices: true }, t),
        changePassword: (t) =>
          unary(c.auth.changePassword.bind(c.auth), {
            currentPassword: PASSWORD,
            newPassword: "hijacked password",
          }, t),
        deleteAccount: (t) => unary(c.auth.deleteAccount.bind(c.auth), { password: PASSWORD }, t),
        listDevices: (t) => unary(c.auth.listDevices.bind(c.auth), {}, t),
        renameDevice: (t) =>
          unary(
            c.auth.renameDevice.bind(c.auth),
            { deviceId: alicePhone.deviceId, name: "pwned" },
            t,
          ),
        revokeDevice: (t) =>
          unary(c.auth.revokeDevice.bind(c.auth), { deviceId: alicePhone.deviceId }, t),
        sendProvisioning: (t) =>
          unary(c.auth.sendProvisioning.bind(c.auth), {
            sessionId: crypto.randomUUID(),
            sealedBlob: new Uint8Array(10),
          }, t),
        setIdentityKey: (t) =>
          unary(c.keys.setIdentityKey.bind(c.keys), { identityKey: newIdentity }, t),
        changeIdentityKey: (t) =>
          unary(c.keys.changeIdentityKey.bind(c.keys), {
            password: PASSWORD,
            identityKey: newIdentity,
            signedPrekey: undefined,
            lastResortKyberPrekey: undefined,
            registrationId: 5,
          }, t),
        uploadSignedPrekey: (t) =>
          unary(c.keys.uploadSignedPrekey.bind(c.keys), { signedPrekey: undefined }, t),
        uploadOneTimePrekeys: (t) =>
          unary(
            c.keys.uploadOneTimePrekeys.bind(c.keys),
            { prekeys: [], replaceExisting: true },
            t,
          ),
        uploadKyberPrekeys: (t) =>
          unary(c.keys.uploadKyberPrekeys.bind(c.keys), { prekeys: [], replaceExisting: true }, t),
        setLastResortKyberPrekey: (t) =>
          unary(c.keys.setLastResortKyberPrekey.bind(c.keys), { prekey: undefined }, t),
        getPrekeyCounts: (t) => unary(c.keys.getPrekeyCounts.bind(c.keys), {}, t),
        fetchPrekeyBundles: (t) =>
          unary(c.keys.fetchPrekeyBundles.bind(c.keys), {
            accountId: alice.accountId,
            deviceId: "",
          }, t),
        uploadKeyPackages: (t) =>
          unary(c.keys.uploadKeyPackages.bind(c.keys), {
            cipherSuite: 1,
            keyPackages: [],
            lastResortKeyPackage: new Uint8Array(),
            replaceExisting: true,
          }, t),
        claimKeyPackages: (t) =>
          unary(c.keys.claimKeyPackages.bind(c.keys), {
            cipherSuite: 1,
            accountIds: [alice.accountId],
            devices: [],
          }, t),
        getKeyPackageCount: (t) =>
          unary(c.keys.getKeyPackageCount.bind(c.keys), { cipherSuite: 1 }, t),
        searchUsers: (t) =>
          unary(c.directory.searchUsers.bind(c.directory), {
            prefix: alice.username.slice(0, 5),
            page: undefined,
          }, t),
        getProfile: (t) =>
          unary(c.directory.getProfile.bind(c.directory), {
            lookup: { $case: "accountId", value: alice.accountId },
          }, t),
      };

      const cases: [string, string | undefined, string][] = [
        ["no token", undefined, "TOKEN_MISSING"],
        ["malformed token", "not a jwt at all", "TOKEN_INVALID"],
        ["expired token", expired, "TOKEN_EXPIRED"],
        ["token signed by another key", foreign, "TOKEN_INVALID"],
        ["revoked device token", revoked.accessToken, "DEVICE_REVOKED"],
      ];
      for (const [rpc, call] of Object.entries(calls)) {
        for (const [label, token, reason] of cases) {
          const error = await failure(call(token));
          assertEquals(
            [error.code, error.reason],
            [grpc.status.UNAUTHENTICATED, reason],
            `${rpc} with ${label}`,
          );
        }
      }

      // Another account's valid token: calls that target Alice's devices are refused; the rest
      // act on Mallory's own account (so they cannot touch Alice's data either).
      const rename = await failure(calls.renameDevice!(mallory.accessToken));
      assertEquals(rename.code, grpc.status.NOT_FOUND);
      const revoke = await failure(calls.revokeDevice!(mallory.accessToken));
      assertEquals(revoke.code, grpc.status.NOT_FOUND);
      const { devices: malloryDevices } = await unary(
        c.auth.listDevices.bind(c.auth),
        {},
        mallory.accessToken,
      );
      assert(malloryDevices.every((d) => d.deviceId !== alice.deviceId));

      // Nothing of Alice's changed.
      const { devices } = await unary(c.auth.listDevices.bind(c.auth), {}, alice.accessToken);
      assertEquals(devices.map((d) => d.name).sort(), ["laptop", "phone"]);
      const counts = await unary(c.keys.getPrekeyCounts.bind(c.keys), {}, alice.accessToken);
      assertEquals([counts.oneTimePrekeyCount, counts.kyberPrekeyCount], [2, 1]);
      await login(c, alice.username, "laptop", alice.deviceId);
    } finally {
      c.close();
      await platform.stop();
    }
  },
});
