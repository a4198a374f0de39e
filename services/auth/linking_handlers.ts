/**
 * Device linking, the provisioning half of guardyn.v1.AuthService: a new device opens a
 * session and waits; a signed-in device of the account sends the sealed provisioning data; the
 * new device completes the link with the token it received. Part of authServiceHandlers.
 */

import * as grpc from "@grpc/grpc-js";
import { constantTimeEqual, sha256 } from "../../crypto/primitives.ts";
import type { AuthServiceService } from "../../proto/gen/guardyn/v1/auth.ts";
import type { AuthContext } from "../platform/auth.ts";
import {
  failedPrecondition,
  GuardynError,
  notFound,
  resourceExhausted,
} from "../platform/errors.ts";
import { type Handlers, requireAuth } from "../platform/grpc_server.ts";
import { sleep } from "../platform/time.ts";
import { parseProvisioningToken, provisioningToken } from "./account_rules.ts";
import type { AuthContextDeps } from "./context.ts";
import { createDeviceRecord } from "./device_records.ts";
import { PROVISIONING_WAKE_ACCOUNT, ProvisioningWaiters } from "./provisioning_waiters.ts";
import { checkBytes, checkDeviceRegistration, checkId } from "./validation.ts";

export const PROVISIONING_TTL_MS = 10 * 60_000;
/** Re-read of a waited-on session when no wake-up came (the bus is a hint). */
const PROVISIONING_REREAD_MS = 5_000;
const SEALED_BLOB_MAX = 65_536;

type LinkingMethods =
  | "createProvisioningSession"
  | "sendProvisioning"
  | "waitProvisioning"
  | "completeLinking";

export function linkingHandlers(
  deps: AuthContextDeps,
): Pick<Handlers<typeof AuthServiceService>, LinkingMethods> {
  const { stores, settings, tokens, limiters, log, now } = deps;
  const waiters = new ProvisioningWaiters(settings.maxProvisioningWaitsPerAddress);
  return {
    async createProvisioningSession(_request, ctx) {
      limiters.registrationsByAddress.take(ctx.clientAddress, "provisioning sessions");
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
      // Wakes the new device's wait on whichever instance holds it; a lost wake-up only delays
      // it until the next re-read.
      await deps.bus.wake(PROVISIONING_WAKE_ACCOUNT, sessionId).catch((error) =>
        log.warn("provisioning wake-up not published", { error })
      );
      return { expiresAtMs: session.expiresAtMs };
    },

    async waitProvisioning(request, call, ctx) {
      const sessionId = checkId(request.sessionId, "session_id");
      const secret = checkBytes(request.waitSecret, "wait_secret", 32, 32);
      const secretHash = sha256(secret);
      const found = await stores.provisioning.get(sessionId, now());
      if (!found || !constantTimeEqual(found.waitSecretHash, secretHash)) {
        throw notFound("provisioning session not found or expired");
      }
      const { replaced, release } = waiters.enter(sessionId, ctx.clientAddress);
      let wake: (() => void) | undefined;
      const wakeUps = await deps.bus.onWake(PROVISIONING_WAKE_ACCOUNT, sessionId, () => wake?.());
      const ended = AbortSignal.any([ctx.signal, replaced]);
      try {
        for (;;) {
          const session = await stores.provisioning.get(sessionId, now());
          if (!session) throw failedPrecondition("provisioning session expired", "EXPIRED");
          if (session.sealedBlob) {
            call.write({
              sealedBlob: session.sealedBlob,
              provisioningToken: provisioningToken(session.id, secret),
              provisioningTokenExpiresAtMs: session.expiresAtMs,
            });
            return;
          }
          // The server's deadline is the session's expiry; a wake-up or the slow re-read
          // (a lost wake-up) ends each wait.
          const untilExpiry = session.expiresAtMs - now();
          if (untilExpiry <= 0) throw failedPrecondition("provisioning session expired", "EXPIRED");
          const woken = new AbortController();
          wake = () => woken.abort();
          await sleep(
            Math.min(PROVISIONING_REREAD_MS, untilExpiry),
            AbortSignal.any([ended, woken.signal]),
          ).catch((error) => {
            if (!woken.signal.aborted || ended.aborted) throw ended.reason ?? error;
          });
        }
      } finally {
        release();
        await wakeUps.unsubscribe();
      }
    },

    async completeLinking(request) {
      const { sessionId, secret } = parseProvisioningToken(request.provisioningToken);
      const registration = checkDeviceRegistration(request.device);
      const secretHash = sha256(secret);
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
      const device = await createDeviceRecord(deps, consumed.accountId, registration);
      const auth: AuthContext = { accountId: consumed.accountId, deviceId: device.id };
      log.info("device linked", { ...auth });
      return { ...auth, tokens: await tokens.start(auth) };
    },
  };
}
