/**
 * guardyn.v1.KeyDirectoryService: the public key directory. Uploads act on the calling device
 * and are checked (sizes, counts, XEdDSA signatures by the account identity key) before they
 * are stored; fetches claim one-time keys atomically and are rate limited per target device.
 */

import * as grpc from "@grpc/grpc-js";
import type { KeyDirectoryServiceService, PrekeyBundle } from "../../proto/gen/guardyn/v1/auth.ts";
import type { AuthContext } from "../platform/auth.ts";
import { failedPrecondition, GuardynError, notFound } from "../platform/errors.ts";
import { type Handlers, requireAuth } from "../platform/grpc_server.ts";
import { addressableDevices } from "../store/addressable.ts";
import type { OneTimePrekey } from "../store/auth_ports.ts";
import { type AuthContextDeps, deviceOf, invalidCredentials, keyLimitReached } from "./context.ts";
import { keyPackageHandlers } from "./key_package_handlers.ts";
import {
  bundleOf,
  checkBatchSize,
  checkEcPublicKey,
  checkOneTimePrekeys,
  checkRegistrationId,
  checkSignedPrekey,
  checkUniqueIds,
} from "./key_rules.ts";
import { verifyPassword } from "./password.ts";
import { checkId } from "./validation.ts";

/** Re-exported for the contract's documentation of accepted suites. */
export { SUPPORTED_CIPHER_SUITES } from "./key_rules.ts";

export function keyDirectoryHandlers(
  deps: AuthContextDeps,
): Handlers<typeof KeyDirectoryServiceService> {
  const { stores, settings: limits, limiters, now } = deps;

  const identityKeyOf = async (accountId: string): Promise<Uint8Array> => {
    const account = await stores.accounts.byId(accountId);
    if (!account) throw notFound("account not found");
    if (!account.identityKey) {
      throw failedPrecondition("the account has no identity key yet", "IDENTITY_KEY_MISSING");
    }
    return account.identityKey;
  };

  const bundleFor = async (
    requester: AuthContext,
    device: { id: string; registrationId: number },
    accountId: string,
  ): Promise<PrekeyBundle> => {
    limiters.prekeyFetches.take(
      `${requester.accountId}/${requester.deviceId}>${accountId}/${device.id}`,
      "prekey bundle fetches for this device",
    );
    const oneTime = limiters.oneTimeBudgets.prekeys.tryTake(
      `${accountId}/${device.id}`,
      requester.accountId,
    );
    const claimed = await stores.prekeys.claimBundle({ accountId, deviceId: device.id }, {
      oneTime,
    });
    return bundleOf(device, claimed);
  };

  return {
    async setIdentityKey(request, ctx) {
      const auth = requireAuth(ctx);
      const identityKey = checkEcPublicKey(request.identityKey, "identity_key");
      const outcome = await stores.accounts.setIdentityKey(
        auth.accountId,
        identityKey,
        false,
        now(),
      );
      if (outcome === "conflict") {
        throw new GuardynError(
          grpc.status.ALREADY_EXISTS,
          "IDENTITY_KEY_ALREADY_SET",
          "the account already has another identity key; use ChangeIdentityKey",
        );
      }
      return {};
    },

    async changeIdentityKey(request, ctx) {
      const auth = requireAuth(ctx);
      const account = await stores.accounts.byId(auth.accountId);
      if (!account) throw notFound("account not found");
      limiters.loginFailuresByAccount.take(account.id, "password attempts");
      if (!await verifyPassword(request.password, account.passwordHash)) {
        throw invalidCredentials();
      }
      const identityKey = checkEcPublicKey(request.identityKey, "identity_key");
      const signed = await checkSignedPrekey(
        identityKey,
        request.signedPrekey,
        "ec",
        "signed_prekey",
      );
      const lastResort = await checkSignedPrekey(
        identityKey,
        request.lastResortKyberPrekey,
        "kem",
        "last_resort_kyber_prekey",
      );
      const registrationId = checkRegistrationId(request.registrationId);
      const current = await stores.devices.get(auth.accountId, auth.deviceId);
      if (!current) throw notFound("device not found");
      await stores.accounts.setIdentityKey(auth.accountId, identityKey, true, now());
      // Other devices hold the old identity private key: they must be linked again.
      const revoked: string[] = [];
      for (const other of await stores.devices.list(auth.accountId)) {
        if (other.id === auth.deviceId) continue;
        await stores.devices.remove(auth.accountId, other.id);
        await stores.refreshTokens.revokeDevice(auth.accountId, other.id);
        deps.forgetDevice(auth.accountId, other.id);
        revoked.push(other.id);
      }
      await stores.devices.clearKeys(auth.accountId, auth.deviceId);
      await stores.devices.reinstall(auth.accountId, auth.deviceId, {
        registrationId,
        name: current.name,
        platform: current.platform,
      });
      await stores.prekeys.setSignedPrekey(deviceOf(auth), signed, now());
      await stores.prekeys.setLastResortKem(deviceOf(auth), lastResort);
      for (const deviceId of revoked) {
        await deps.bus.publish({
          kind: "device.revoked",
          accountId: auth.accountId,
          deviceId,
          atMs: now(),
        });
      }
      await deps.bus.publish({ kind: "identity.changed", accountId: auth.accountId, atMs: now() });
      ctx.log.info("identity key changed", { accountId: auth.accountId, revoked: revoked.length });
      return { revokedDeviceIds: revoked };
    },

    async uploadSignedPrekey(request, ctx) {
      const auth = requireAuth(ctx);
      const identityKey = await identityKeyOf(auth.accountId);
      const signed = await checkSignedPrekey(
        identityKey,
        request.signedPrekey,
        "ec",
        "signed_prekey",
      );
      await stores.prekeys.setSignedPrekey(deviceOf(auth), signed, now());
      return {};
    },

    async uploadOneTimePrekeys(request, ctx) {
      const auth = requireAuth(ctx);
      const prekeys = checkOneTimePrekeys(request.prekeys, limits.maxKeysPerUpload);
      const storedCount = await stores.prekeys.addOneTime(
        deviceOf(auth),
        "ec",
        prekeys,
        limits.maxOneTimePrekeysPerDevice,
        request.replaceExisting,
      ).catch(keyLimitReached);
      return { storedCount };
    },

    async uploadKyberPrekeys(request, ctx) {
      const auth = requireAuth(ctx);
      checkBatchSize(request.prekeys.length, limits.maxKeysPerUpload, "prekeys");
      const identityKey = await identityKeyOf(auth.accountId);
      const prekeys: OneTimePrekey[] = [];
      for (const [i, prekey] of request.prekeys.entries()) {
        prekeys.push(await checkSignedPrekey(identityKey, prekey, "kem", `prekeys[${i}]`));
      }
      checkUniqueIds(prekeys.map((p) => p.keyId), "prekeys");
      const storedCount = await stores.prekeys.addOneTime(
        deviceOf(auth),
        "kem",
        prekeys,
        limits.maxOneTimePrekeysPerDevice,
        request.replaceExisting,
      ).catch(keyLimitReached);
      return { storedCount };
    },

    async setLastResortKyberPrekey(request, ctx) {
      const auth = requireAuth(ctx);
      const identityKey = await identityKeyOf(auth.accountId);
      const prekey = await checkSignedPrekey(identityKey, request.prekey, "kem", "prekey");
      await stores.prekeys.setLastResortKem(deviceOf(auth), prekey);
      return {};
    },

    async getPrekeyCounts(_request, ctx) {
      const auth = requireAuth(ctx);
      const counts = await stores.prekeys.counts(deviceOf(auth));
      return {
        oneTimePrekeyCount: counts.oneTimePrekeys,
        kyberPrekeyCount: counts.kemPrekeys,
        signedPrekeyId: counts.signedPrekeyId,
        signedPrekeyUploadedAtMs: counts.signedPrekeyUploadedAtMs,
        hasLastResortKyberPrekey: counts.hasLastResortKemPrekey,
      };
    },

    async fetchPrekeyBundles(request, ctx) {
      const auth = requireAuth(ctx);
      const accountId = checkId(request.accountId, "account_id");
      const identityKey = await identityKeyOf(accountId);
      let targets = await addressableDevices(stores, accountId, { identityKeyKnown: true });
      if (request.deviceId) {
        const deviceId = checkId(request.deviceId, "device_id");
        targets = targets.filter((d) => d.id === deviceId);
        if (targets.length === 0) throw notFound("device not found or not addressable");
      } else if (accountId === auth.accountId) {
        targets = targets.filter((d) => d.id !== auth.deviceId);
      }
      const bundles: PrekeyBundle[] = [];
      for (const target of targets) bundles.push(await bundleFor(auth, target, accountId));
      return { accountId, identityKey, bundles };
    },
    ...keyPackageHandlers(deps),
  };
}
