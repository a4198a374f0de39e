/**
 * The MLS half of guardyn.v1.KeyDirectoryService: key package uploads by the calling device,
 * claims (one package per device, atomically) and counts. Part of keyDirectoryHandlers.
 */

import type { KeyDirectoryServiceService } from "../../proto/gen/guardyn/v1/auth.ts";
import type { DeviceAddress } from "../../proto/gen/guardyn/v1/common.ts";
import { invalidArgument } from "../platform/errors.ts";
import { type Handlers, requireAuth } from "../platform/grpc_server.ts";
import { addressableDevices } from "../store/addressable.ts";
import { type AuthContextDeps, deviceOf, keyLimitReached } from "./context.ts";
import { checkClaimCounts, checkKeyPackage, checkKeyPackages, checkSuite } from "./key_rules.ts";
import { checkId } from "./validation.ts";
import { sha256, toHex } from "../../crypto/primitives.ts";

type KeyPackageMethods = "uploadKeyPackages" | "claimKeyPackages" | "getKeyPackageCount";

export function keyPackageHandlers(
  deps: AuthContextDeps,
): Pick<Handlers<typeof KeyDirectoryServiceService>, KeyPackageMethods> {
  const { stores, settings: limits, limiters } = deps;
  return {
    async uploadKeyPackages(request, ctx) {
      const auth = requireAuth(ctx);
      const suite = checkSuite(request.cipherSuite);
      const expectedIdentity = `${auth.accountId}:${auth.deviceId}`;
      const packages = checkKeyPackages(
        request.keyPackages,
        limits.maxKeysPerUpload,
        suite,
        expectedIdentity,
      );
      const hasLastResort = request.lastResortKeyPackage.byteLength > 0;
      if (packages.length === 0 && !hasLastResort && !request.replaceExisting) {
        throw invalidArgument("nothing to upload");
      }
      const lastResort = hasLastResort
        ? checkKeyPackage(
          request.lastResortKeyPackage,
          "last_resort_key_package",
          suite,
          expectedIdentity,
        )
        : undefined;
      let storedCount = (await stores.keyPackages.count(deviceOf(auth), suite)).count;
      if (packages.length > 0 || request.replaceExisting) {
        storedCount = await stores.keyPackages.add(
          deviceOf(auth),
          suite,
          packages,
          limits.maxKeyPackagesPerDevice,
          request.replaceExisting,
        ).catch(keyLimitReached);
      }
      if (lastResort) await stores.keyPackages.setLastResort(deviceOf(auth), suite, lastResort);
      return { storedCount };
    },

    async claimKeyPackages(request, ctx) {
      const auth = requireAuth(ctx);
      const suite = checkSuite(request.cipherSuite);
      checkClaimCounts(request.accountIds.length, request.devices.length);
      limiters.keyPackageClaims.take(
        `${auth.accountId}/${auth.deviceId}`,
        "key package claims",
        request.accountIds.length + request.devices.length,
      );
      const wanted = new Map<string, DeviceAddress>();
      for (const accountId of request.accountIds) {
        checkId(accountId, "account_ids[]");
        for (const d of await addressableDevices(stores, accountId)) {
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
        const oneTime = limiters.oneTimeBudgets.keyPackages.tryTake(
          `${address.accountId}/${address.deviceId}`,
          auth.accountId,
        );
        const claimed = await stores.keyPackages.claim(address, suite, { oneTime });
        if (claimed) {
          await deps.recordKeyPackageClaim?.(address, toHex(sha256(claimed.data)));
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
      return await stores.keyPackages.count(deviceOf(auth), suite);
    },
  };
}
