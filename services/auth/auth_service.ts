/**
 * guardyn.v1.AuthService: accounts, devices, tokens and device linking. Handlers validate,
 * apply the rules and translate store errors into statuses with reasons.
 */

import * as grpc from "@grpc/grpc-js";
import type { AuthServiceService } from "../../proto/gen/guardyn/v1/auth.ts";
import { GuardynError, invalidArgument, notFound } from "../platform/errors.ts";
import { type Handlers, requireAuth } from "../platform/grpc_server.ts";
import type { RateLimiter } from "../platform/rate_limit.ts";
import { UsernameTakenError } from "../store/auth_ports.ts";
import {
  canonicalUsername,
  checkPasswordStrength,
  lastSeenDay,
  USERNAME_RULE,
} from "./account_rules.ts";
import { type AuthContextDeps, invalidCredentials } from "./context.ts";
import { createDeviceRecord, removeDeviceRecords } from "./device_records.ts";
import { linkingHandlers } from "./linking_handlers.ts";
import { hashPassword, verifyPassword } from "./password.ts";
import {
  checkDeviceName,
  checkDeviceRegistration,
  checkId,
  type DeviceRegistrationInput,
} from "./validation.ts";

export const AUTH_PUBLIC_METHODS = [
  "register",
  "login",
  "refresh",
  "createProvisioningSession",
  "waitProvisioning",
  "completeLinking",
] as const;

export function authServiceHandlers(deps: AuthContextDeps): Handlers<typeof AuthServiceService> {
  const { stores, settings, tokens, limiters, log, now } = deps;

  const createDevice = (accountId: string, registration: DeviceRegistrationInput) =>
    createDeviceRecord(deps, accountId, registration);
  const removeDevices = (accountId: string, deviceIds: string[]) =>
    removeDeviceRecords(deps, accountId, deviceIds);

  const checkPassword = async (accountId: string, password: string) => {
    const account = await stores.accounts.byId(accountId);
    if (!account) throw notFound("account not found");
    limiters.loginFailuresByAccount.take(account.id, "password attempts");
    if (!await verifyPassword(password, account.passwordHash)) throw invalidCredentials();
    limiters.loginFailuresByAccount.reset(account.id);
    return account;
  };

  return {
    async register(request, ctx) {
      limiters.registrationsByAddress.take(ctx.clientAddress, "registrations");
      const username = canonicalUsername(request.username);
      if (!username) throw invalidArgument(USERNAME_RULE);
      checkPasswordStrength(request.password);
      const registration = checkDeviceRegistration(request.device);
      const accountId = crypto.randomUUID();
      try {
        await stores.accounts.create({
          id: accountId,
          username,
          passwordHash: await hashPassword(request.password),
          createdAtMs: now(),
        });
      } catch (error) {
        if (error instanceof UsernameTakenError) {
          throw new GuardynError(grpc.status.ALREADY_EXISTS, "USERNAME_TAKEN", error.message);
        }
        throw error;
      }
      const device = await createDevice(accountId, registration);
      ctx.log.info("account registered", { accountId, deviceId: device.id });
      const auth = { accountId, deviceId: device.id };
      return { accountId, deviceId: device.id, tokens: await tokens.start(auth) };
    },

    async login(request, ctx) {
      const address = ctx.clientAddress;
      limiters.loginAttemptsByAddress.take(address, "login attempts");
      const registration = checkDeviceRegistration(request.device);
      const username = canonicalUsername(request.username);
      const account = username ? await stores.accounts.byUsername(username) : undefined;
      // Failures are counted by the name as typed (canonical when valid), existing or not, so
      // no limit reveals which usernames exist.
      const name = username ?? request.username.slice(0, 64).toLowerCase();
      const pair = `${name}|${address}`;
      const refuse = (limiter: RateLimiter, key: string, what: string) => {
        if (!limiter.allows(key)) limiter.take(key, what);
      };
      refuse(limiters.loginFailuresByUserAtAddress, pair, "failed logins for this username");
      refuse(limiters.loginFailuresByAddress, address, "failed logins from this address");
      // A username under attack slows down addresses that have failed before; one that has
      // not (its owner, most likely) may still try its password.
      const addressClean = limiters.loginFailuresByAddress.allows(
        address,
        settings.loginAddressFailuresBurst,
      );
      if (!addressClean) {
        refuse(limiters.loginFailuresByUsername, name, "failed logins for this username");
      }
      // Unknown user: the same Argon2id work and the same error as a wrong password.
      const ok = await verifyPassword(
        request.password,
        account?.passwordHash ?? deps.dummyPasswordHash,
      );
      if (!account || !ok) {
        limiters.loginFailuresByUserAtAddress.tryTake(pair);
        limiters.loginFailuresByAddress.tryTake(address);
        limiters.loginFailuresByUsername.tryTake(name);
        throw invalidCredentials();
      }
      limiters.loginFailuresByUserAtAddress.reset(pair);

      let deviceId: string;
      if (request.deviceId) {
        deviceId = checkId(request.deviceId, "device_id");
        const existing = await stores.devices.get(account.id, deviceId);
        if (!existing) throw notFound("device not found in this account");
        await stores.refreshTokens.revokeDevice(account.id, deviceId);
        if (existing.registrationId !== registration.registrationId) {
          // Reinstalled: its keys and queued messages belong to the old install.
          await stores.devices.reinstall(account.id, deviceId, registration);
          await stores.devices.clearKeys(account.id, deviceId);
          await deps.bus.publish({
            kind: "device.revoked",
            accountId: account.id,
            deviceId,
            atMs: now(),
          });
        }
        await stores.devices.touch(account.id, deviceId, now());
      } else {
        deviceId = (await createDevice(account.id, registration)).id;
      }
      log.info("device signed in", { accountId: account.id, deviceId });
      const auth = { accountId: account.id, deviceId };
      return { accountId: account.id, deviceId, tokens: await tokens.start(auth) };
    },

    async refresh(request) {
      const { auth, tokens: pair } = await tokens.refresh(request.refreshToken);
      const device = await stores.devices.get(auth.accountId, auth.deviceId);
      if (!device) {
        throw new GuardynError(grpc.status.UNAUTHENTICATED, "DEVICE_REVOKED", "device revoked");
      }
      await stores.devices.touch(auth.accountId, auth.deviceId, now());
      return { tokens: pair };
    },

    async logout(request, ctx) {
      const auth = requireAuth(ctx);
      const targets = request.allDevices
        ? (await stores.devices.list(auth.accountId)).map((device) => device.id)
        : [auth.deviceId];
      return { removedDeviceIds: await removeDevices(auth.accountId, targets) };
    },

    async changePassword(request, ctx) {
      const auth = requireAuth(ctx);
      checkPasswordStrength(request.newPassword);
      await checkPassword(auth.accountId, request.currentPassword);
      await stores.accounts.setPasswordHash(
        auth.accountId,
        await hashPassword(request.newPassword),
      );
      return {};
    },

    async deleteAccount(request, ctx) {
      const auth = requireAuth(ctx);
      await checkPassword(auth.accountId, request.password);
      const devices = await stores.devices.list(auth.accountId);
      await stores.accounts.delete(auth.accountId);
      deps.forgetDevice(auth.accountId);
      await deps.bus.publish({
        kind: "account.deleted",
        accountId: auth.accountId,
        atMs: now(),
        // Messaging purges mailboxes per device; the devices are gone from the store by now.
        deviceIds: devices.map((device) => device.id),
      });
      ctx.log.info("account deleted", { accountId: auth.accountId, devices: devices.length });
      return {};
    },

    async listDevices(_request, ctx) {
      const auth = requireAuth(ctx);
      const devices = await stores.devices.list(auth.accountId);
      return {
        devices: devices.map((device) => ({
          deviceId: device.id,
          name: device.name,
          platform: device.platform,
          createdAtMs: device.createdAtMs,
          lastSeenMs: lastSeenDay(device.lastSeenAtMs),
          current: device.id === auth.deviceId,
        })),
      };
    },

    async renameDevice(request, ctx) {
      const auth = requireAuth(ctx);
      const deviceId = checkId(request.deviceId, "device_id");
      const name = checkDeviceName(request.name);
      if (!await stores.devices.rename(auth.accountId, deviceId, name)) {
        throw notFound("device not found in this account");
      }
      return {};
    },

    async revokeDevice(request, ctx) {
      const auth = requireAuth(ctx);
      const deviceId = checkId(request.deviceId, "device_id");
      if ((await removeDevices(auth.accountId, [deviceId])).length === 0) {
        throw notFound("device not found in this account");
      }
      return {};
    },

    ...linkingHandlers(deps),
  };
}
