/** The auth service module: AuthService, KeyDirectoryService and DirectoryService. */

import {
  AuthServiceService,
  DirectoryServiceService,
  KeyDirectoryServiceService,
} from "../../proto/gen/guardyn/v1/auth.ts";
import type { ServiceModule } from "../platform/runtime.ts";
import { TokenIssuer } from "../platform/tokens.ts";
import { AUTH_PUBLIC_METHODS, authServiceHandlers } from "./account_service.ts";
import { type AuthContextDeps, createLimiters } from "./context.ts";
import { directoryHandlers } from "./directory_service.ts";
import { keyDirectoryHandlers } from "./key_service.ts";
import { dummyHash } from "./password.ts";
import { SessionTokens } from "./session_tokens.ts";

const PROVISIONING_PURGE_INTERVAL_MS = 60_000;

export const authModule: ServiceModule = {
  name: "auth",
  async register(server, deps) {
    const { config, store } = deps;
    const now = () => Date.now();
    const issuer = new TokenIssuer(
      deps.tokenKeys,
      config.hosts.api,
      config.tokens.accessTtlSeconds,
    );
    const context: AuthContextDeps = {
      stores: store.auth,
      bus: deps.bus,
      log: deps.log.child({ service: "auth" }),
      config,
      tokens: new SessionTokens(issuer, store.auth.refreshTokens, config.tokens.refreshTtlSeconds),
      limiters: createLimiters(config),
      dummyPasswordHash: await dummyHash(),
      forgetDevice: deps.deviceStatus.forget,
      now,
    };
    server.addService("guardyn.v1.AuthService", AuthServiceService, authServiceHandlers(context), {
      publicMethods: AUTH_PUBLIC_METHODS,
    });
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
    // Expired linking sessions are removed in the background (bounded batches).
    const purge = setInterval(() => {
      store.auth.provisioning.purgeExpired(now(), 1000).catch((error) =>
        context.log.warn("provisioning purge failed", { error })
      );
    }, PROVISIONING_PURGE_INTERVAL_MS);
    return { stop: () => Promise.resolve(clearInterval(purge)) };
  },
};
