/**
 * Runs one or many services in this process on the same code path: parse config, open the
 * store and the bus (failing loudly when a configured backend is unreachable), start the gRPC
 * server and the ops HTTP endpoint, and stop everything in order on SIGTERM/SIGINT.
 */

import { openBus } from "../bus/open.ts";
import type { Bus } from "../bus/port.ts";
import { openStore } from "../store/open.ts";
import type { Store } from "../store/ports.ts";
import type { Authenticator } from "./auth.ts";
import { type CachedDeviceStatus, cachedDeviceStatus } from "./device_status.ts";
import { loadTokenKeys } from "./token_keys.ts";
import { jwtAuthenticator, type TokenKeys } from "./tokens.ts";
import { type Config, describeConfig, type Env, parseConfig } from "./config.ts";
import { GrpcServer } from "./grpc_server.ts";
import { startOpsServer } from "./http.ts";
import { createLogger, type Logger } from "./log.ts";
import { createMetrics, type Metrics } from "./metrics.ts";

export interface ServiceDeps {
  config: Config;
  log: Logger;
  metrics: Metrics;
  store: Store;
  bus: Bus;
  /** Access-token keys: every service verifies, the auth service also signs. */
  tokenKeys: TokenKeys;
  /** Device status behind token checks; forget() after a local revocation. */
  deviceStatus: CachedDeviceStatus;
}

/** What a service leaves running besides its gRPC handlers (timers, consumers...). */
export interface ServiceInstance {
  stop(): Promise<void>;
}

export interface ServiceModule {
  /** Short name for logs: "auth", "messaging", ... */
  name: string;
  register(server: GrpcServer, deps: ServiceDeps): Promise<ServiceInstance | void>;
}

export interface RunOptions {
  env?: Env;
  log?: Logger;
  /** Replaces the token verifier (tests); defaults to EdDSA JWTs plus the device status. */
  authenticator?: (deps: ServiceDeps) => Promise<Authenticator> | Authenticator;
}

export interface RunningPlatform {
  config: Config;
  grpcPort: number;
  metricsPort: number;
  deps: ServiceDeps;
  stop(): Promise<void>;
}

export async function runServices(
  modules: readonly ServiceModule[],
  options: RunOptions = {},
): Promise<RunningPlatform> {
  const config = parseConfig(options.env ?? Deno.env.toObject());
  const log = options.log ?? createLogger({ level: config.logLevel });
  log.info("starting", { services: modules.map((m) => m.name), ...describeConfig(config) });
  const metrics = createMetrics();

  const store = await openStore(config.store, log);
  let bus: Bus;
  try {
    bus = await openBus(config.bus, log);
  } catch (error) {
    await store.close();
    throw error;
  }
  let tokenKeys: TokenKeys;
  try {
    tokenKeys = await loadTokenKeys(config, log);
  } catch (error) {
    await Promise.allSettled([bus.close(), store.close()]);
    throw error;
  }
  const deviceStatus = cachedDeviceStatus(async (accountId, deviceId) =>
    (await store.auth.devices.get(accountId, deviceId)) !== undefined
  );
  const deps: ServiceDeps = { config, log, metrics, store, bus, tokenKeys, deviceStatus };

  const server = new GrpcServer({
    host: config.grpc.host,
    port: config.grpc.port,
    limits: config.grpc.limits,
    log,
    metrics,
    authenticator: options.authenticator ? await options.authenticator(deps) : jwtAuthenticator({
      keys: tokenKeys,
      issuer: config.hosts.api,
      deviceStatus: deviceStatus.status,
    }),
  });
  const instances: ServiceInstance[] = [];
  const closeBackends = async () => {
    await Promise.allSettled([bus.close(), store.close()]);
  };
  let grpcPort: number;
  try {
    for (const module of modules) {
      const instance = await module.register(server, deps);
      if (instance) instances.push(instance);
    }
    grpcPort = await server.start();
  } catch (error) {
    await Promise.allSettled(instances.map((instance) => instance.stop()));
    await closeBackends();
    throw error;
  }
  const ops = startOpsServer({
    host: config.metrics.host,
    port: config.metrics.port,
    metrics,
    log,
    readiness: { store: () => store.ping(), bus: () => bus.ping() },
  });
  log.info("ready", {
    grpc: `${config.grpc.host}:${grpcPort}`,
    metrics: `http://${config.metrics.host}:${ops.port}/metrics`,
    store: store.info.backend,
    bus: bus.info.backend,
  });

  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      log.info("stopping: draining calls", { graceMs: config.shutdownGraceMs });
      await server.shutdown(config.shutdownGraceMs);
      await Promise.allSettled(instances.map((instance) => instance.stop()));
      await ops.close();
      await closeBackends();
      log.info("stopped");
    })();
  return { config, grpcPort, metricsPort: ops.port, deps, stop };
}

/**
 * Entry point helper for `main.ts` files: runs the modules until SIGINT/SIGTERM, then shuts
 * down gracefully. Startup errors print one clear line and exit non-zero.
 */
export async function main(modules: readonly ServiceModule[], options: RunOptions = {}) {
  let platform: RunningPlatform;
  try {
    platform = await runServices(modules, options);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    Deno.stderr.writeSync(new TextEncoder().encode(`guardyn: cannot start: ${message}\n`));
    Deno.exit(1);
  }
  const { config, grpcPort, metricsPort } = platform;
  const banner =
    `Guardyn is running (store: ${platform.deps.store.info.backend}, bus: ${platform.deps.bus.info.backend})\n` +
    `  gRPC     ${config.grpc.host}:${grpcPort}  (grpc.health.v1 and the Guardyn services)\n` +
    `  metrics  http://${config.metrics.host}:${metricsPort}/metrics  (/healthz, /readyz)\n` +
    `Press Ctrl-C to stop.\n`;
  Deno.stdout.writeSync(new TextEncoder().encode(banner));
  const onSignal = () => {
    platform.stop().then(() => Deno.exit(0), () => Deno.exit(1));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  return platform;
}
