/**
 * The auth service through real gRPC, on the embedded store and on Cassandra + JetStream:
 * accounts, devices, tokens, the key directory, key packages, linking and the directory.
 */

import * as grpc from "@grpc/grpc-js";
import {
  encodePublicKey,
  generateIdentityKeyPair,
  generateSignedPrekey,
  toPublicPrekey,
} from "../../crypto/keys.ts";
import { assert, assertEquals } from "../../tests/assert.ts";
import { collect, failure, unary } from "../../tests/support/grpc.ts";
import { type Backend, startPlatform, type TestPlatform } from "../../tests/support/platform.ts";
import {
  type Clients,
  clients,
  keyPackagesFor,
  login,
  PASSWORD,
  publishKeys,
  register,
  registration,
  uniqueUsername,
} from "../../tests/support/accounts_test_kit.ts";
import { NO_SANITIZERS } from "../../tests/support/wait.ts";

export function authServiceSuite(backend: Backend) {
  let running: Promise<{ platform: TestPlatform; c: Clients }> | undefined;
  const setup = () =>
    running ??= startPlatform(["auth"], {
      backend,
      env: {
        MAX_DEVICES_PER_ACCOUNT: "3",
        LOGIN_FAILURES_BURST: "3",
        PREKEY_FETCH_BURST: "200",
        REGISTRATION_BURST: "10000",
        LOGIN_ATTEMPTS_BURST: "10000",
      },
    }).then((platform) => ({ platform, c: clients(platform.address) }));
  const test = (name: string, fn: (c: Clients, platform: TestPlatform) => Promise<void>) =>
    Deno.test({
      name: `auth service (${backend}): ${name}`,
      ...NO_SANITIZERS,
      fn: async () => {
        const { platform, c } = await setup();
        await fn(c, platform);
      },
    });

  test("register, then the access token works and lists the first device", async (c) => {
    const alice = await register(c);
    const { devices } = await unary(c.auth.listDevices.bind(c.auth), {}, alice.accessToken);
    assertEquals(devices.length, 1);
    assertEquals(devices[0]?.deviceId, alice.deviceId);
    assertEquals(devices[0]?.current, true);
    assertEquals(devices[0]?.name, "laptop");
  });

  test("usernames: rules, case-insensitive uniqueness, weak passwords", async (c) => {
    const name = uniqueUsername("Case");
    await register(c, name);
    const taken = await failure(register(c, name.toUpperCase()));
    assertEquals([taken.code, taken.reason], [grpc.status.ALREADY_EXISTS, "USERNAME_TAKEN"]);
    for (const bad of ["ab", "has space", "a".repeat(33), "dash-name"]) {
      const error = await failure(register(c, bad));
      assertEquals(error.code, grpc.status.INVALID_ARGUMENT, bad);
      assert(error.details.includes("3-32"), error.details);
    }
    const weak = await failure(
      unary(c.auth.register.bind(c.auth), {
        username: uniqueUsername(),
        password: "short",
        device: registration(),
      }),
    );
    assertEquals([weak.code, weak.reason], [grpc.status.INVALID_ARGUMENT, "WEAK_PASSWORD"]);
  });

  test("login: unknown user and wrong password look the same; failures are rate limited", async (c) => {
    const alice = await register(c);
    const wrong = await failure(
      unary(c.auth.login.bind(c.auth), {
        username: alice.username,
        password: "wrong password!",
        device: registration(),
        deviceId: "",
      }),
    );
    const unknown = await failure(
      unary(c.auth.login.bind(c.auth), {
        username: uniqueUsername(),
        password: "wrong password!",
        device: registration(),
        deviceId: "",
      }),
    );
    assertEquals(wrong, unknown);
    assertEquals(wrong.reason, "INVALID_CREDENTIALS");
    for (let i = 0; i < 3; i++) {
      await failure(
        unary(c.auth.login.bind(c.auth), {
          username: alice.username,
          password: "still wrong!!",
          device: registration(),
          deviceId: "",
        }),
      );
    }
    const limited = await failure(login(c, alice.username));
    assertEquals([limited.code, limited.reason], [grpc.status.RESOURCE_EXHAUSTED, "RATE_LIMITED"]);
    // An unknown username is limited the same way, so the limit reveals nothing.
    const ghost = uniqueUsername("ghost");
    const ghostErrors = [];
    for (let i = 0; i < 4; i++) {
      ghostErrors.push(
        await failure(
          unary(c.auth.login.bind(c.auth), {
            username: ghost,
            password: "still wrong!!",
            device: registration(),
            deviceId: "",
          }),
        ),
      );
    }
    assertEquals(ghostErrors.map((e) => e.reason), [
      "INVALID_CREDENTIALS",
      "INVALID_CREDENTIALS",
      "INVALID_CREDENTIALS",
      "RATE_LIMITED",
    ]);
  });

  test("devices: new logins add devices up to the cap; rename and revoke", async (c) => {
    const alice = await register(c);
    const phone = await login(c, alice.username, "phone");
    await login(c, alice.username, "tablet");
    const full = await failure(login(c, alice.username, "fourth"));
    assertEquals([full.code, full.reason], [
      grpc.status.RESOURCE_EXHAUSTED,
      "DEVICE_LIMIT_REACHED",
    ]);
    await unary(
      c.auth.renameDevice.bind(c.auth),
      { deviceId: phone.deviceId, name: "work phone" },
      alice.accessToken,
    );
    const badName = await failure(
      unary(
        c.auth.renameDevice.bind(c.auth),
        { deviceId: phone.deviceId, name: "" },
        alice.accessToken,
      ),
    );
    assertEquals(badName.code, grpc.status.INVALID_ARGUMENT);
    await unary(c.auth.revokeDevice.bind(c.auth), { deviceId: phone.deviceId }, alice.accessToken);
    const revoked = await failure(unary(c.auth.listDevices.bind(c.auth), {}, phone.accessToken));
    assertEquals([revoked.code, revoked.reason], [grpc.status.UNAUTHENTICATED, "DEVICE_REVOKED"]);
    const refresh = await failure(
      unary(c.auth.refresh.bind(c.auth), { refreshToken: phone.refreshToken }),
    );
    assertEquals(refresh.code, grpc.status.UNAUTHENTICATED);
    const { devices } = await unary(c.auth.listDevices.bind(c.auth), {}, alice.accessToken);
    assertEquals(devices.map((d) => d.name).sort(), ["laptop", "tablet"]);
    // Signing in again as an existing device does not take a new slot.
    const again = await login(c, alice.username, "laptop", alice.deviceId);
    assertEquals(again.deviceId, alice.deviceId);
  });

  test("refresh tokens rotate; reusing a rotated one revokes the family", async (c) => {
    const alice = await register(c);
    const first = await unary(c.auth.refresh.bind(c.auth), { refreshToken: alice.refreshToken });
    assert(first.tokens && first.tokens.refreshToken !== alice.refreshToken);
    const newAccess = first.tokens.accessToken;
    await unary(c.auth.listDevices.bind(c.auth), {}, newAccess);
    const reuse = await failure(
      unary(c.auth.refresh.bind(c.auth), { refreshToken: alice.refreshToken }),
    );
    assertEquals([reuse.code, reuse.reason], [grpc.status.UNAUTHENTICATED, "TOKEN_INVALID"]);
    const descendant = await failure(
      unary(c.auth.refresh.bind(c.auth), { refreshToken: first.tokens.refreshToken }),
    );
    assertEquals(descendant.reason, "TOKEN_INVALID");
    const garbage = await failure(
      unary(c.auth.refresh.bind(c.auth), { refreshToken: "x".repeat(600) }),
    );
    assertEquals(garbage.code, grpc.status.UNAUTHENTICATED);
  });

  test("logout of this device, then of all devices", async (c) => {
    const alice = await register(c);
    const phone = await login(c, alice.username, "phone");
    const out = await unary(c.auth.logout.bind(c.auth), { allDevices: false }, phone.accessToken);
    assertEquals(out.removedDeviceIds, [phone.deviceId]);
    const tablet = await login(c, alice.username, "tablet");
    const all = await unary(c.auth.logout.bind(c.auth), { allDevices: true }, tablet.accessToken);
    assertEquals(all.removedDeviceIds.sort(), [alice.deviceId, tablet.deviceId].sort());
    const after = await failure(unary(c.auth.listDevices.bind(c.auth), {}, alice.accessToken));
    assertEquals(after.reason, "DEVICE_REVOKED");
  });

  test("change password needs the current one", async (c) => {
    const alice = await register(c);
    const wrong = await failure(
      unary(
        c.auth.changePassword.bind(c.auth),
        { currentPassword: "not the password", newPassword: "another long password" },
        alice.accessToken,
      ),
    );
    assertEquals(wrong.reason, "INVALID_CREDENTIALS");
    await unary(
      c.auth.changePassword.bind(c.auth),
      { currentPassword: PASSWORD, newPassword: "another long password" },
      alice.accessToken,
    );
    const old = await failure(login(c, alice.username));
    assertEquals(old.reason, "INVALID_CREDENTIALS");
    await unary(c.auth.login.bind(c.auth), {
      username: alice.username,
      password: "another long password",
      device: registration(),
      deviceId: alice.deviceId,
    });
  });

  test("identity key is set once; prekeys are signature-checked and claimed once", async (c) => {
    const alice = await register(c);
    const bob = await register(c);
    const identity = await publishKeys(c, alice, { oneTime: 3, kem: 2 });
    // Same key again is fine; another key is refused.
    await unary(c.keys.setIdentityKey.bind(c.keys), {
      identityKey: encodePublicKey(identity.publicKey),
    }, alice.accessToken);
    const other = await generateIdentityKeyPair();
    const conflict = await failure(
      unary(c.keys.setIdentityKey.bind(c.keys), {
        identityKey: encodePublicKey(other.publicKey),
      }, alice.accessToken),
    );
    assertEquals([conflict.code, conflict.reason], [
      grpc.status.ALREADY_EXISTS,
      "IDENTITY_KEY_ALREADY_SET",
    ]);
    // A signed prekey signed by another identity is refused.
    const forged = toPublicPrekey(await generateSignedPrekey(other, 2));
    const badSignature = await failure(
      unary(c.keys.uploadSignedPrekey.bind(c.keys), {
        signedPrekey: { keyId: 2, publicKey: forged.publicKey, signature: forged.signature },
      }, alice.accessToken),
    );
    assertEquals([badSignature.code, badSignature.reason], [
      grpc.status.INVALID_ARGUMENT,
      "INVALID_SIGNATURE",
    ]);
    const counts = await unary(c.keys.getPrekeyCounts.bind(c.keys), {}, alice.accessToken);
    assertEquals(
      [
        counts.oneTimePrekeyCount,
        counts.kyberPrekeyCount,
        counts.signedPrekeyId,
        counts.hasLastResortKyberPrekey,
      ],
      [3, 2, 1, true],
    );
    const seen = new Set<number>();
    for (let i = 0; i < 4; i++) {
      const { bundles, identityKey } = await unary(
        c.keys.fetchPrekeyBundles.bind(c.keys),
        { accountId: alice.accountId, deviceId: "" },
        bob.accessToken,
      );
      assertEquals(new Uint8Array(identityKey), encodePublicKey(identity.publicKey));
      assertEquals(bundles.length, 1);
      const bundle = bundles[0]!;
      assertEquals(bundle.deviceId, alice.deviceId);
      assertEquals(bundle.registrationId, 1234);
      if (bundle.oneTimePrekey) {
        assert(!seen.has(bundle.oneTimePrekey.keyId), "a one-time key is handed out once");
        seen.add(bundle.oneTimePrekey.keyId);
      }
      assertEquals(bundle.kyberPrekeyLastResort, i >= 2);
      assertEquals(bundle.oneTimePrekeysExhausted, i >= 2);
    }
    assertEquals(seen.size, 3);
  });

  test("bundles: only addressable devices, own device excluded, rate limited per target", async (c) => {
    const alice = await register(c);
    const identity = await publishKeys(c, alice);
    const phone = await login(c, alice.username, "phone");
    // The phone has no keys yet: not addressable.
    let own = await unary(c.keys.fetchPrekeyBundles.bind(c.keys), {
      accountId: alice.accountId,
      deviceId: "",
    }, alice.accessToken);
    assertEquals(own.bundles.length, 0);
    await publishKeys(c, phone, { identity });
    own = await unary(c.keys.fetchPrekeyBundles.bind(c.keys), {
      accountId: alice.accountId,
      deviceId: "",
    }, alice.accessToken);
    assertEquals(own.bundles.map((b) => b.deviceId), [phone.deviceId]);
    const carol = await register(c);
    const missing = await failure(
      unary(
        c.keys.fetchPrekeyBundles.bind(c.keys),
        { accountId: carol.accountId, deviceId: "" },
        alice.accessToken,
      ),
    );
    assertEquals(missing.reason, "IDENTITY_KEY_MISSING");
  });

  test("key uploads: limits and malformed keys are refused with the limit", async (c) => {
    const alice = await register(c);
    await publishKeys(c, alice);
    const tooMany = await failure(
      unary(c.keys.uploadOneTimePrekeys.bind(c.keys), {
        prekeys: Array.from(
          { length: 101 },
          (_, i) => ({ keyId: i + 1, publicKey: new Uint8Array(33) }),
        ),
        replaceExisting: false,
      }, alice.accessToken),
    );
    assertEquals(tooMany.code, grpc.status.INVALID_ARGUMENT);
    assert(tooMany.details.includes("1..100"), tooMany.details);
    const badKey = await failure(
      unary(c.keys.uploadOneTimePrekeys.bind(c.keys), {
        prekeys: [{ keyId: 1, publicKey: new Uint8Array(32) }],
        replaceExisting: false,
      }, alice.accessToken),
    );
    assert(badKey.details.includes("33 bytes"), badKey.details);
    const duplicateIds = await failure(
      unary(c.keys.uploadOneTimePrekeys.bind(c.keys), {
        prekeys: [
          { keyId: 5, publicKey: encodePublicKey((await generateIdentityKeyPair()).publicKey) },
          { keyId: 5, publicKey: encodePublicKey((await generateIdentityKeyPair()).publicKey) },
        ],
        replaceExisting: false,
      }, alice.accessToken),
    );
    assert(duplicateIds.details.includes("unique"), duplicateIds.details);
  });

  test("MLS key packages: identity checked, claimed once, then last resort", async (c) => {
    const alice = await register(c);
    const bob = await register(c);
    const identity = await publishKeys(c, alice);
    void identity;
    const [kp1, kp2, last] = await keyPackagesFor(alice, 3);
    const stored = await unary(c.keys.uploadKeyPackages.bind(c.keys), {
      cipherSuite: 1,
      keyPackages: [kp1!, kp2!],
      lastResortKeyPackage: last!,
      replaceExisting: false,
    }, alice.accessToken);
    assertEquals(stored.storedCount, 2);
    const foreign = await keyPackagesFor(bob, 1);
    const wrongOwner = await failure(
      unary(c.keys.uploadKeyPackages.bind(c.keys), {
        cipherSuite: 1,
        keyPackages: foreign,
        lastResortKeyPackage: new Uint8Array(),
        replaceExisting: false,
      }, alice.accessToken),
    );
    assert(wrongOwner.details.includes("credential identity"), wrongOwner.details);
    const claimed = [];
    for (let i = 0; i < 3; i++) {
      const response = await unary(c.keys.claimKeyPackages.bind(c.keys), {
        cipherSuite: 1,
        accountIds: [alice.accountId],
        devices: [],
      }, bob.accessToken);
      claimed.push(...response.keyPackages);
    }
    assertEquals(claimed.map((k) => k.lastResort), [false, false, true]);
    assertEquals(new Set(claimed.slice(0, 2).map((k) => k.keyPackage.toString())).size, 2);
    const count = await unary(
      c.keys.getKeyPackageCount.bind(c.keys),
      { cipherSuite: 1 },
      alice.accessToken,
    );
    assertEquals([count.count, count.hasLastResort], [0, true]);
  });

  test("linking a new device through the sealed provisioning blob", async (c) => {
    const alice = await register(c);
    const session = await unary(c.auth.createProvisioningSession.bind(c.auth), {});
    const waiting = collect(
      c.auth.waitProvisioning({ sessionId: session.sessionId, waitSecret: session.waitSecret }),
    );
    const sealed = crypto.getRandomValues(new Uint8Array(512));
    await unary(c.auth.sendProvisioning.bind(c.auth), {
      sessionId: session.sessionId,
      sealedBlob: sealed,
    }, alice.accessToken);
    const [message] = await waiting;
    assert(message);
    assertEquals(
      new Uint8Array(message.sealedBlob),
      sealed,
      "the server relays the blob untouched",
    );
    const again = await failure(
      unary(c.auth.sendProvisioning.bind(c.auth), {
        sessionId: session.sessionId,
        sealedBlob: sealed,
      }, alice.accessToken),
    );
    assertEquals(again.code, grpc.status.ALREADY_EXISTS);
    const wrongSecret = await failure(
      collect(
        c.auth.waitProvisioning({ sessionId: session.sessionId, waitSecret: new Uint8Array(32) }),
      ),
    );
    assertEquals(wrongSecret.code, grpc.status.NOT_FOUND);
    const linked = await unary(c.auth.completeLinking.bind(c.auth), {
      provisioningToken: message.provisioningToken,
      device: registration("linked laptop", 777),
    });
    assertEquals(linked.accountId, alice.accountId);
    const used = await failure(
      unary(c.auth.completeLinking.bind(c.auth), {
        provisioningToken: message.provisioningToken,
        device: registration("thief", 778),
      }),
    );
    assertEquals(used.reason, "EXPIRED");
    const { devices } = await unary(
      c.auth.listDevices.bind(c.auth),
      {},
      linked.tokens!.accessToken,
    );
    assertEquals(devices.length, 2);
  });

  test("directory: prefix search with pages, profiles with addressable devices", async (c) => {
    const prefix = `dir${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`;
    const users = [];
    for (let i = 0; i < 5; i++) users.push(await register(c, `${prefix}_${i}`));
    await publishKeys(c, users[0]!);
    const me = users[1]!.accessToken;
    const page1 = await unary(c.directory.searchUsers.bind(c.directory), {
      prefix,
      page: { pageSize: 3, pageToken: "" },
    }, me);
    assertEquals(page1.users.map((u) => u.username), users.slice(0, 3).map((u) => u.username));
    const page2 = await unary(
      c.directory.searchUsers.bind(c.directory),
      { prefix, page: { pageSize: 3, pageToken: page1.nextPageToken } },
      me,
    );
    assertEquals(page2.users.map((u) => u.username), users.slice(3).map((u) => u.username));
    assertEquals(page2.nextPageToken, "");
    const profile = await unary(
      c.directory.getProfile.bind(c.directory),
      { lookup: { $case: "username", value: users[0]!.username.toUpperCase() } },
      me,
    );
    // Audit finding 5: another account's devices and key history are not in its profile.
    assertEquals(profile.deviceIds, []);
    assertEquals(profile.identityKeyChangedAtMs, 0);
    assertEquals(profile.identityKey.length, 33);
    assertEquals(page1.users.map((u) => u.accountId), ["", "", ""]);
    const own = await unary(
      c.directory.getProfile.bind(c.directory),
      { lookup: { $case: "accountId", value: users[0]!.accountId } },
      users[0]!.accessToken,
    );
    assertEquals(own.deviceIds, [users[0]!.deviceId]);
    const tooBig = await failure(
      unary(c.directory.searchUsers.bind(c.directory), {
        prefix,
        page: { pageSize: 51, pageToken: "" },
      }, me),
    );
    assert(tooBig.details.includes("1..50"), tooBig.details);
  });

  test("changing the identity key revokes the other devices and resets keys", async (c) => {
    const alice = await register(c);
    const identity = await publishKeys(c, alice, { oneTime: 2 });
    const phone = await login(c, alice.username, "phone");
    await publishKeys(c, phone, { identity });
    const next = await generateIdentityKeyPair();
    const signed = toPublicPrekey(await generateSignedPrekey(next, 9));
    const { generateLastResortKemPrekey } = await import("../../crypto/keys.ts");
    const lastResort = toPublicPrekey(await generateLastResortKemPrekey(next, 99));
    const changed = await unary(c.keys.changeIdentityKey.bind(c.keys), {
      password: PASSWORD,
      identityKey: encodePublicKey(next.publicKey),
      signedPrekey: { keyId: 9, publicKey: signed.publicKey, signature: signed.signature },
      lastResortKyberPrekey: {
        keyId: 99,
        publicKey: lastResort.publicKey,
        signature: lastResort.signature,
      },
      registrationId: 4321,
    }, alice.accessToken);
    assertEquals(changed.revokedDeviceIds, [phone.deviceId]);
    const phoneCall = await failure(unary(c.auth.listDevices.bind(c.auth), {}, phone.accessToken));
    assertEquals(phoneCall.reason, "DEVICE_REVOKED");
    const counts = await unary(c.keys.getPrekeyCounts.bind(c.keys), {}, alice.accessToken);
    assertEquals([counts.oneTimePrekeyCount, counts.signedPrekeyId], [0, 9]);
  });

  test("deleting the account needs the password and removes everything", async (c, platform) => {
    const alice = await register(c);
    await publishKeys(c, alice, { oneTime: 2 });
    const bob = await register(c);
    const wrong = await failure(
      unary(c.auth.deleteAccount.bind(c.auth), { password: "wrong password" }, alice.accessToken),
    );
    assertEquals(wrong.reason, "INVALID_CREDENTIALS");
    const events: string[] = [];
    const consumer = await platform.platform.deps.bus.consume(
      `test-deleted-${crypto.randomUUID().slice(0, 8)}`,
      ["account.deleted"],
      (delivery) => {
        if (delivery.event.kind === "account.deleted") events.push(delivery.event.accountId);
        return Promise.resolve();
      },
    );
    await unary(c.auth.deleteAccount.bind(c.auth), { password: PASSWORD }, alice.accessToken);
    const gone = await failure(
      unary(c.directory.getProfile.bind(c.directory), {
        lookup: { $case: "accountId", value: alice.accountId },
      }, bob.accessToken),
    );
    assertEquals(gone.code, grpc.status.NOT_FOUND);
    const revoked = await failure(unary(c.auth.listDevices.bind(c.auth), {}, alice.accessToken));
    assertEquals(revoked.reason, "DEVICE_REVOKED");
    for (let i = 0; i < 100 && !events.includes(alice.accountId); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await consumer.unsubscribe();
    assert(events.includes(alice.accountId), "an account.deleted event reached the bus");
    // The username can be taken again.
    await register(c, alice.username);
  });

  Deno.test({
    name: `auth service (${backend}): stop`,
    ...NO_SANITIZERS,
    fn: async () => {
      if (!running) return;
      const { platform, c } = await running;
      c.close();
      await platform.stop();
    },
  });
}

authServiceSuite("embedded");
authServiceSuite("cluster");
