/** The auth service module: AuthService, KeyDirectoryService and DirectoryService. */

import {
  AuthServiceService,
  DirectoryServiceService,
  KeyDirectoryServiceService,
} from "../../proto/gen/guardyn/v1/auth.ts";
import "../store/group_ports.ts";
import { defineService } from "../kit/service_module.ts";
import { TokenIssuer } from "../platform/tokens.ts";
import { AUTH_PUBLIC_METHODS, authServiceHandlers } from "./auth_service.ts";
import { type AuthContextDeps, createLimiters } from "./context.ts";
import { directoryHandlers } from "./directory_service.ts";
import { keyDirectoryHandlers } from "./key_service.ts";
import { dummyHash } from "./password.ts";
import { SessionTokens } from "./session_tokens.ts";
import { readAuthSettings } from "./settings.ts";

const PROVISIONING_PURGE_INTERVAL_MS = 60_000;

/**
 * How long a handed-out key package may still be used to add its device to a group (the
 * groups service refuses an Add with any other package). A week covers a commit retried
 * after a long offline spell; the package itself is single-use in MLS anyway.
 */
const KEY_PACKAGE_CLAIM_KEPT_MS = 7 * 86_400_000;

export const authModule = defineService({
  name: "auth",
  grpcServices: [
    "guardyn.v1.AuthService",
    "guardyn.v1.KeyDirectoryService",
    "guardyn.v1.DirectoryService",
  ],
  settings: readAuthSettings,
  stores: ["auth", "groups"],
  events: { publishes: ["device.revoked", "identity.changed", "account.deleted"], consumes: [] },
  deploy: {
    resources: { cpu: "250m", memory: "256Mi", memoryLimit: "768Mi" },
    prod: { minReplicas: 2, maxReplicas: 8 },
  },
  async start(deps) {
    const { platform, settings, store } = deps;
    const now = () => Date.now();
    const issuer = new TokenIssuer(
      deps.tokenKeys,
      platform.hosts.api,
      platform.tokens.accessTtlSeconds,
    );
    const context: AuthContextDeps = {
      stores: store.auth,
      bus: deps.bus,
      log: deps.log,
      settings,
      tokens: new SessionTokens(issuer, store.auth.refreshTokens, {
        refreshTtlSeconds: platform.tokens.refreshTtlSeconds,
        sessionMaxAgeSeconds: platform.tokens.sessionMaxAgeSeconds,
        // This instance refuses the family's access tokens at once; others within the
        // device-status cache's few seconds.
        onFamilyRevoked: (record) => deps.deviceStatus.forget(record.accountId, record.deviceId),
      }),
      limiters: createLimiters(settings),
      dummyPasswordHash: await dummyHash(),
      forgetDevice: deps.deviceStatus.forget,
      recordKeyPackageClaim: (device, ref) =>
        store.groups.recordClaim(device, ref, now(), now() + KEY_PACKAGE_CLAIM_KEPT_MS),
      now,
    };
    // Expired linking sessions are removed in the background (bounded batches).
    const purge = setInterval(() => {
      store.auth.provisioning.purgeExpired(now(), 1000).catch((error) =>
        context.log.warn("provisioning purge failed", { error })
      );
    }, PROVISIONING_PURGE_INTERVAL_MS);
    return {
      register(server) {
        server.addService(
          "guardyn.v1.AuthService",
          AuthServiceService,
          authServiceHandlers(context),
          { publicMethods: AUTH_PUBLIC_METHODS },
        );
        server.addService(
          "guardyn.v1.KeyDirectoryService",
          KeyDirectoryServiceService,
          keyDirectoryHandlers(context),
        );
        server.addService(
          "guardyn.v1.DirectoryService",
          DirectoryServiceService,
          directoryHandlers(context),
        );
      },
      tasks: [{ name: "provisioning-purge", stop: () => clearInterval(purge) }],
    };
  },
});
