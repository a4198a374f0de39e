/**
 * guardyn.v1.AuthService: accounts, devices, tokens and device linking. Handlers validate,
 * apply the rules and translate store errors into statuses with reasons.
 */

import * as grpc from "@grpc/grpc-js";
import { base64url } from "jose";
import { constantTimeEqual, sha256 } from "../../crypto/primitives.ts";
import type { AuthServiceService } from "../../proto/gen/guardyn/v1/auth.ts";
import type { AuthContext } from "../platform/auth.ts";
import {
  failedPrecondition,
  GuardynError,
  invalidArgument,
  notFound,
  resourceExhausted,
} from "../platform/errors.ts";
import { type CallContext, type Handlers, requireAuth } from "../platform/grpc_server.ts";
import { DeviceLimitError, UsernameTakenError } from "../store/auth_ports.ts";
import { type AuthContextDeps, clientAddress, invalidCredentials } from "./context.ts";
import { hashPassword, passwordProblem, verifyPassword } from "./password.ts";
import { canonicalUsername, USERNAME_RULE } from "./username.ts";
import { checkBytes, checkDeviceName, checkDeviceRegistration, checkId } from "./validation.ts";

export const PROVISIONING_TTL_MS = 10 * 60_000;
const PROVISIONING_POLL_MS = 250;
const SEALED_BLOB_MAX = 65_536;
const DAY_MS = 86_400_000;

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

  const weakPassword = (password: string) => {
    const problem = passwordProblem(password);
    if (problem) throw invalidArgument(problem, "WEAK_PASSWORD");
  };

  const createDevice = async (
    accountId: string,
    registration: ReturnType<typeof checkDeviceRegistration>,
  ) => {
    const at = now();
    const device = {
      accountId,
      id: crypto.randomUUID(),
      name: registration.name,
      platform: registration.platform,
      registrationId: registration.registrationId,
      createdAtMs: at,
      lastSeenAtMs: at,
    };
    try {
      await stores.devices.create(device, settings.maxDevicesPerAccount);
    } catch (error) {
      if (error instanceof DeviceLimitError) {
        throw resourceExhausted(error.message, "DEVICE_LIMIT_REACHED");
      }
      throw error;
    }
    return device;
  };

  /** Removes devices and tells other services to purge what they hold for them. */
  const removeDevices = async (accountId: string, deviceIds: string[]) => {
    const removed: string[] = [];
    for (const deviceId of deviceIds) {
      if (await stores.devices.remove(accountId, deviceId)) removed.push(deviceId);
      await stores.refreshTokens.revokeDevice(accountId, deviceId);
      deps.forgetDevice(accountId, deviceId);
    }
    for (const deviceId of removed) {
      await deps.bus.publish({ kind: "device.revoked", accountId, deviceId, atMs: now() });
    }
    return removed;
  };

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
      limiters.registrationsByAddress.take(clientAddress(ctx.peer), "registrations");
      const username = canonicalUsername(request.username);
      if (!username) throw invalidArgument(USERNAME_RULE);
      weakPassword(request.password);
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
      limiters.loginAttemptsByAddress.take(clientAddress(ctx.peer), "login attempts");
      const registration = checkDeviceRegistration(request.device);
      const username = canonicalUsername(request.username);
      const account = username ? await stores.accounts.byUsername(username) : undefined;
      // Failures are counted per username, existing or not, so the limit itself does not
      // reveal which usernames exist.
      const failureKey = `user:${username ?? request.username.slice(0, 64).toLowerCase()}`;
      if (!limiters.loginFailuresByAccount.allows(failureKey)) {
        limiters.loginFailuresByAccount.take(failureKey, "failed logins for this username");
      }
      // Unknown user: the same Argon2id work and the same error as a wrong password.
      const ok = await verifyPassword(
        request.password,
        account?.passwordHash ?? deps.dummyPasswordHash,
      );
      if (!account || !ok) {
        limiters.loginFailuresByAccount.tryTake(failureKey);
        throw invalidCredentials();
      }
      limiters.loginFailuresByAccount.reset(failureKey);

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
      weakPassword(request.newPassword);
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
          lastSeenMs: Math.floor(device.lastSeenAtMs / DAY_MS) * DAY_MS,
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

    async createProvisioningSession(_request, ctx) {
      limiters.registrationsByAddress.take(clientAddress(ctx.peer), "provisioning sessions");
      const waitSecret = crypto.getRandomValues(new Uint8Array(32));
      const session = {
        id: crypto.randomUUID(),
        waitSecretHash: sha256(waitSecret),
        expiresAtMs: now() + PROVISIONING_TTL_MS,
      };
      await stores.provisioning.create(session);
      return { sessionId: session.id, waitSecret, expiresAtMs: session.expiresAtMs };
    },

    async sendProvisioning(request, ctx) {
      const auth = requireAuth(ctx);
      const sessionId = checkId(request.sessionId, "session_id");
      const sealedBlob = checkBytes(request.sealedBlob, "sealed_blob", 1, SEALED_BLOB_MAX);
      const devices = await stores.devices.list(auth.accountId);
      if (devices.length >= settings.maxDevicesPerAccount) {
        throw resourceExhausted(
          `an account may have at most ${settings.maxDevicesPerAccount} devices`,
          "DEVICE_LIMIT_REACHED",
        );
      }
      const session = await stores.provisioning.get(sessionId, now());
      if (!session) throw failedPrecondition("provisioning session expired or unknown", "EXPIRED");
      const filled = await stores.provisioning.fill(sessionId, {
        sealedBlob,
        accountId: auth.accountId,
        linkTokenHash: session.waitSecretHash,
      }, now());
      if (!filled) {
        throw new GuardynError(
          grpc.status.ALREADY_EXISTS,
          "ALREADY_EXISTS",
          "this provisioning session already received its data",
        );
      }
      return { expiresAtMs: session.expiresAtMs };
    },

    async waitProvisioning(request, call, ctx) {
      const sessionId = checkId(request.sessionId, "session_id");
      const secret = checkBytes(request.waitSecret, "wait_secret", 32, 32);
      const secretHash = sha256(secret);
      for (let first = true;; first = false) {
        const session = await stores.provisioning.get(sessionId, now());
        if (!session && !first) {
          throw failedPrecondition("provisioning session expired", "EXPIRED");
        }
        if (!session || !constantTimeEqual(session.waitSecretHash, secretHash)) {
          throw notFound("provisioning session not found or expired");
        }
        if (session.sealedBlob) {
          call.write({
            sealedBlob: session.sealedBlob,
            provisioningToken: `${session.id}.${base64url.encode(secret)}`,
            provisioningTokenExpiresAtMs: session.expiresAtMs,
          });
          return;
        }
        await sleep(PROVISIONING_POLL_MS, ctx);
      }
    },

    async completeLinking(request) {
      const [sessionId, encodedSecret] = request.provisioningToken.split(".");
      if (!sessionId || !encodedSecret || request.provisioningToken.length > 512) {
        throw invalidArgument("provisioning_token is malformed");
      }
      checkId(sessionId, "provisioning_token");
      const registration = checkDeviceRegistration(request.device);
      let secretHash: Uint8Array;
      try {
        secretHash = sha256(base64url.decode(encodedSecret));
      } catch {
        throw invalidArgument("provisioning_token is malformed");
      }
      const session = await stores.provisioning.get(sessionId, now());
      if (
        !session?.accountId || !session.sealedBlob ||
        !constantTimeEqual(session.waitSecretHash, secretHash)
      ) {
        throw failedPrecondition("provisioning token expired, used or unknown", "EXPIRED");
      }
      const consumed = await stores.provisioning.consume(sessionId, now());
      if (!consumed?.accountId) {
        throw failedPrecondition("provisioning token expired, used or unknown", "EXPIRED");
      }
      const device = await createDevice(consumed.accountId, registration);
      const auth: AuthContext = { accountId: consumed.accountId, deviceId: device.id };
      log.info("device linked", { ...auth });
      return { ...auth, tokens: await tokens.start(auth) };
    },
  };
}

function sleep(ms: number, ctx: CallContext): Promise<void> {
  return new Promise((resolve, reject) => {
    if (ctx.signal.aborted) return reject(ctx.signal.reason);
    const timer = setTimeout(() => {
      ctx.signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(ctx.signal.reason);
    };
    ctx.signal.addEventListener("abort", onAbort, { once: true });
  });
}
