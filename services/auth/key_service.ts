/**
 * guardyn.v1.KeyDirectoryService: the public key directory. Uploads act on the calling device
 * and are checked (sizes, counts, XEdDSA signatures by the account identity key) before they
 * are stored; fetches claim one-time keys atomically and are rate limited per target device.
 */

import * as grpc from "@grpc/grpc-js";
import { type CiphersuiteName, ciphersuites } from "ts-mls";
import {
  decodePublicKey,
  ENCODED_KEM_PUBLIC_KEY_BYTES,
  ENCODED_PUBLIC_KEY_BYTES,
  KEM_KEY_TYPE_ML_KEM_1024,
  verifyPublicPrekey,
} from "../../crypto/keys.ts";
import { asBytes, sha256, toHex } from "../../crypto/primitives.ts";
import { inspectKeyPackage } from "../../crypto/mls_inspect.ts";
import type {
  KeyDirectoryServiceService,
  KyberPrekey,
  PrekeyBundle,
  SignedPrekey,
} from "../../proto/gen/guardyn/v1/auth.ts";
import type { DeviceAddress } from "../../proto/gen/guardyn/v1/common.ts";
import {
  failedPrecondition,
  GuardynError,
  invalidArgument,
  notFound,
  resourceExhausted,
} from "../platform/errors.ts";
import { type Handlers, requireAuth } from "../platform/grpc_server.ts";
import type { AuthContext } from "../platform/auth.ts";
import { KeyLimitError, type OneTimePrekey } from "../store/auth_ports.ts";
import type { DeviceRef } from "../store/ports.ts";
import { addressableDevices } from "../store/addressable.ts";
import { type AuthContextDeps, invalidCredentials } from "./context.ts";
import { verifyPassword } from "./password.ts";
import { checkBytes, checkId, REGISTRATION_ID_MAX } from "./validation.ts";

const KEY_ID_MAX = 16_777_215;
const SIGNATURE_BYTES = 64;
const KEY_PACKAGE_MAX_BYTES = 16_384;
/** MLS cipher suites accepted: 1 (X25519/AES-128-GCM/Ed25519) and the X-Wing suite. */
export const SUPPORTED_CIPHER_SUITES: readonly number[] = [1, 83];
const CLAIM_ACCOUNTS_MAX = 50;
const CLAIM_DEVICES_MAX = 100;

const invalidSignature = (what: string) =>
  new GuardynError(
    grpc.status.INVALID_ARGUMENT,
    "INVALID_SIGNATURE",
    `${what}: signature does not verify with the account identity key`,
  );

function checkKeyId(keyId: number, field: string): number {
  if (!Number.isInteger(keyId) || keyId < 1 || keyId > KEY_ID_MAX) {
    throw invalidArgument(`${field} must be in 1..${KEY_ID_MAX}`);
  }
  return keyId;
}

function checkEcPublicKey(publicKey: Uint8Array | undefined, field: string): Uint8Array {
  const key = checkBytes(publicKey, field, ENCODED_PUBLIC_KEY_BYTES, ENCODED_PUBLIC_KEY_BYTES);
  try {
    decodePublicKey(key);
  } catch (error) {
    throw invalidArgument(`${field}: ${(error as Error).message}`);
  }
  return key;
}

function checkKemPublicKey(publicKey: Uint8Array | undefined, field: string): Uint8Array {
  const key = checkBytes(
    publicKey,
    field,
    ENCODED_KEM_PUBLIC_KEY_BYTES,
    ENCODED_KEM_PUBLIC_KEY_BYTES,
  );
  if (key[0] !== KEM_KEY_TYPE_ML_KEM_1024) {
    throw invalidArgument(`${field} must be an encoded ML-KEM-1024 key (type byte 0x0a)`);
  }
  return key;
}

function checkUniqueIds(ids: number[], field: string) {
  if (new Set(ids).size !== ids.length) throw invalidArgument(`${field}: key ids must be unique`);
}

function checkBatchSize(count: number, max: number, field: string) {
  if (count < 1 || count > max) throw invalidArgument(`${field}: 1..${max} keys per upload`);
}

function checkSuite(suite: number): number {
  if (!SUPPORTED_CIPHER_SUITES.includes(suite)) {
    throw invalidArgument(`cipher_suite must be one of ${SUPPORTED_CIPHER_SUITES.join(", ")}`);
  }
  return suite;
}

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

  const verifiedSigned = async (
    identityKey: Uint8Array,
    prekey: SignedPrekey | KyberPrekey | undefined,
    kind: "ec" | "kem",
    field: string,
  ) => {
    if (!prekey) throw invalidArgument(`${field} is required`);
    const keyId = checkKeyId(prekey.keyId, `${field}.key_id`);
    const publicKey = kind === "ec"
      ? checkEcPublicKey(prekey.publicKey, `${field}.public_key`)
      : checkKemPublicKey(prekey.publicKey, `${field}.public_key`);
    const signature = checkBytes(
      prekey.signature,
      `${field}.signature`,
      SIGNATURE_BYTES,
      SIGNATURE_BYTES,
    );
    const prekeyToCheck = {
      id: keyId,
      publicKey: asBytes(publicKey),
      signature: asBytes(signature),
    };
    if (!await verifyPublicPrekey(identityKey, prekeyToCheck)) {
      throw invalidSignature(field);
    }
    return { keyId, publicKey, signature };
  };

  const keyLimit = (error: unknown): never => {
    if (error instanceof KeyLimitError) throw resourceExhausted(error.message, "KEY_LIMIT_REACHED");
    throw error;
  };

  const addressable = (accountId: string) => addressableDevices(stores, accountId);

  const bundleFor = async (
    requester: AuthContext,
    device: { id: string; registrationId: number },
    accountId: string,
  ): Promise<PrekeyBundle> => {
    limiters.prekeyFetches.take(
      `${requester.accountId}/${requester.deviceId}>${accountId}/${device.id}`,
      "prekey bundle fetches for this device",
    );
    const claimed = await stores.prekeys.claimBundle({ accountId, deviceId: device.id });
    return {
      deviceId: device.id,
      registrationId: device.registrationId,
      signedPrekey: claimed.signedPrekey && {
        keyId: claimed.signedPrekey.keyId,
        publicKey: claimed.signedPrekey.publicKey,
        signature: claimed.signedPrekey.signature,
      },
      oneTimePrekey: claimed.oneTimePrekey && {
        keyId: claimed.oneTimePrekey.keyId,
        publicKey: claimed.oneTimePrekey.publicKey,
      },
      kyberPrekey: claimed.kemPrekey && {
        keyId: claimed.kemPrekey.keyId,
        publicKey: claimed.kemPrekey.publicKey,
        signature: claimed.kemPrekey.signature ?? new Uint8Array(),
      },
      kyberPrekeyLastResort: claimed.kemPrekey?.lastResort ?? false,
      oneTimePrekeysExhausted: !claimed.oneTimePrekey || (claimed.kemPrekey?.lastResort ?? true),
    };
  };

  const device = (auth: AuthContext): DeviceRef => ({
    accountId: auth.accountId,
    deviceId: auth.deviceId,
  });

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
      const signed = await verifiedSigned(identityKey, request.signedPrekey, "ec", "signed_prekey");
      const lastResort = await verifiedSigned(
        identityKey,
        request.lastResortKyberPrekey,
        "kem",
        "last_resort_kyber_prekey",
      );
      const registrationId = request.registrationId;
      if (
        !Number.isInteger(registrationId) || registrationId < 1 ||
        registrationId > REGISTRATION_ID_MAX
      ) {
        throw invalidArgument(`registration_id must be in 1..${REGISTRATION_ID_MAX}`);
      }
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
      await stores.prekeys.setSignedPrekey(device(auth), signed, now());
      await stores.prekeys.setLastResortKem(device(auth), lastResort);
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
      const signed = await verifiedSigned(identityKey, request.signedPrekey, "ec", "signed_prekey");
      await stores.prekeys.setSignedPrekey(device(auth), signed, now());
      return {};
    },

    async uploadOneTimePrekeys(request, ctx) {
      const auth = requireAuth(ctx);
      checkBatchSize(request.prekeys.length, limits.maxKeysPerUpload, "prekeys");
      const prekeys: OneTimePrekey[] = request.prekeys.map((prekey, i) => ({
        keyId: checkKeyId(prekey.keyId, `prekeys[${i}].key_id`),
        publicKey: checkEcPublicKey(prekey.publicKey, `prekeys[${i}].public_key`),
      }));
      checkUniqueIds(prekeys.map((p) => p.keyId), "prekeys");
      const storedCount = await stores.prekeys.addOneTime(
        device(auth),
        "ec",
        prekeys,
        limits.maxOneTimePrekeysPerDevice,
        request.replaceExisting,
      ).catch(keyLimit);
      return { storedCount };
    },

    async uploadKyberPrekeys(request, ctx) {
      const auth = requireAuth(ctx);
      checkBatchSize(request.prekeys.length, limits.maxKeysPerUpload, "prekeys");
      const identityKey = await identityKeyOf(auth.accountId);
      const prekeys: OneTimePrekey[] = [];
      for (const [i, prekey] of request.prekeys.entries()) {
        prekeys.push(await verifiedSigned(identityKey, prekey, "kem", `prekeys[${i}]`));
      }
      checkUniqueIds(prekeys.map((p) => p.keyId), "prekeys");
      const storedCount = await stores.prekeys.addOneTime(
        device(auth),
        "kem",
        prekeys,
        limits.maxOneTimePrekeysPerDevice,
        request.replaceExisting,
      ).catch(keyLimit);
      return { storedCount };
    },

    async setLastResortKyberPrekey(request, ctx) {
      const auth = requireAuth(ctx);
      const identityKey = await identityKeyOf(auth.accountId);
      const prekey = await verifiedSigned(identityKey, request.prekey, "kem", "prekey");
      await stores.prekeys.setLastResortKem(device(auth), prekey);
      return {};
    },

    async getPrekeyCounts(_request, ctx) {
      const auth = requireAuth(ctx);
      const counts = await stores.prekeys.counts(device(auth));
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

    async uploadKeyPackages(request, ctx) {
      const auth = requireAuth(ctx);
      const suite = checkSuite(request.cipherSuite);
      if (request.keyPackages.length > limits.maxKeysPerUpload) {
        throw invalidArgument(`key_packages: at most ${limits.maxKeysPerUpload} per upload`);
      }
      const expectedIdentity = `${auth.accountId}:${auth.deviceId}`;
      const parse = (data: Uint8Array, field: string) => {
        checkBytes(data, field, 1, KEY_PACKAGE_MAX_BYTES);
        let info;
        try {
          info = inspectKeyPackage(data);
        } catch (error) {
          throw invalidArgument(`${field} is not an MLS KeyPackage: ${(error as Error).message}`);
        }
        const packageSuite = ciphersuites[info.cipherSuite as CiphersuiteName];
        if (packageSuite !== suite) {
          throw invalidArgument(`${field} uses cipher suite ${info.cipherSuite}, not ${suite}`);
        }
        if (info.identity !== expectedIdentity) {
          throw invalidArgument(`${field}: credential identity must be "${expectedIdentity}"`);
        }
        return { ref: toHex(sha256(data)), data };
      };
      const packages = request.keyPackages.map((data, i) => parse(data, `key_packages[${i}]`));
      if (new Set(packages.map((p) => p.ref)).size !== packages.length) {
        throw invalidArgument("key_packages must be distinct");
      }
      const hasLastResort = request.lastResortKeyPackage.byteLength > 0;
      if (packages.length === 0 && !hasLastResort && !request.replaceExisting) {
        throw invalidArgument("nothing to upload");
      }
      const lastResort = hasLastResort
        ? parse(request.lastResortKeyPackage, "last_resort_key_package")
        : undefined;
      let storedCount = (await stores.keyPackages.count(device(auth), suite)).count;
      if (packages.length > 0 || request.replaceExisting) {
        storedCount = await stores.keyPackages.add(
          device(auth),
          suite,
          packages,
          limits.maxKeyPackagesPerDevice,
          request.replaceExisting,
        ).catch(keyLimit);
      }
      if (lastResort) await stores.keyPackages.setLastResort(device(auth), suite, lastResort);
      return { storedCount };
    },

    async claimKeyPackages(request, ctx) {
      const auth = requireAuth(ctx);
      const suite = checkSuite(request.cipherSuite);
      if (request.accountIds.length > CLAIM_ACCOUNTS_MAX) {
        throw invalidArgument(`account_ids: at most ${CLAIM_ACCOUNTS_MAX}`);
      }
      if (request.devices.length > CLAIM_DEVICES_MAX) {
        throw invalidArgument(`devices: at most ${CLAIM_DEVICES_MAX}`);
      }
      if (request.accountIds.length + request.devices.length === 0) {
        throw invalidArgument("name at least one account or device");
      }
      limiters.lookups.take(
        `${auth.accountId}/${auth.deviceId}`,
        "key package claims",
        request.accountIds.length + request.devices.length,
      );
      const wanted = new Map<string, DeviceAddress>();
      for (const accountId of request.accountIds) {
        checkId(accountId, "account_ids[]");
        for (const d of await addressable(accountId)) {
          wanted.set(`${accountId}/${d.id}`, { accountId, deviceId: d.id });
        }
      }
      for (const address of request.devices) {
        checkId(address.accountId, "devices[].account_id");
        checkId(address.deviceId, "devices[].device_id");
        wanted.set(`${address.accountId}/${address.deviceId}`, address);
      }
      const keyPackages = [];
      const unavailableDevices: DeviceAddress[] = [];
      for (const address of wanted.values()) {
        const claimed = await stores.keyPackages.claim(address, suite);
        if (claimed) {
          keyPackages.push({
            device: address,
            keyPackage: claimed.data,
            lastResort: claimed.lastResort,
          });
        } else unavailableDevices.push(address);
      }
      return { keyPackages, unavailableDevices };
    },

    async getKeyPackageCount(request, ctx) {
      const auth = requireAuth(ctx);
      const suite = checkSuite(request.cipherSuite);
      return await stores.keyPackages.count(device(auth), suite);
    },
  };
}
