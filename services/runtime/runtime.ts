/**
 * Runs one or many services in this process on the same code path: parse the configuration,
 * open the store and the bus (failing loudly when a configured backend is unreachable), start
 * each module with what it declared, serve gRPC and the ops HTTP endpoint, and stop everything
 * in order on SIGTERM/SIGINT.
 */

import type { Bus } from "../bus/port.ts";
import type { AnyServiceModule, BackgroundTask } from "../kit/service_module.ts";
import type { Authenticator } from "../platform/auth.ts";
import { type CachedDeviceStatus, cachedDeviceStatus } from "../platform/device_status.ts";
import type { Env } from "../platform/env.ts";
import { GrpcServer } from "../platform/grpc_server.ts";
import { startOpsServer } from "../platform/http.ts";
import { startWebServer, type WebServer } from "../platform/web_server.ts";
import { type Gateway, GATEWAY_WORKER_ENV, startGateway } from "./grpc_gateway.ts";
import { runGatewayWorker } from "./grpc_gateway_worker.ts";
import { createLogger, type Logger } from "../platform/log.ts";
import { createMetrics, type Metrics } from "../platform/metrics.ts";
import { loadTokenKeys } from "../platform/token_keys.ts";
import { openBlobStore } from "./open_blobs.ts";
import type { BlobStore } from "../store/blob_ports.ts";
import { jwtAuthenticator, type TokenKeys } from "../platform/tokens.ts";
import type { Store } from "../store/ports.ts";
import { type Config, describeConfig, parseConfig } from "./config.ts";
import { openBus } from "./open_bus.ts";
import { openStore } from "./open_store.ts";
import { scopedBus, scopedStore } from "./service_scope.ts";
import { instrumentedBus, instrumentedStore } from "./instrumented.ts";

/** What the runtime opened once and shares between the services of this process. */
export interface RuntimeDeps {
  config: Config;
  log: Logger;
  metrics: Metrics;
  store: Store;
  bus: Bus;
  tokenKeys: TokenKeys;
  deviceStatus: CachedDeviceStatus;
}

export interface RunOptions {
  env?: Env;
  log?: Logger;
  /** Replaces the token verifier (tests); defaults to EdDSA JWTs plus the device status. */
  authenticator?: (deps: RuntimeDeps) => Promise<Authenticator> | Authenticator;
}

export interface RunningPlatform {
  config: Config;
  /** The gRPC-Web/Connect listener's port: what the SDK talks to. */
  httpPort: number;
  /** Native gRPC's port (gateway workers or in-process); 0 when GRPC_LISTENER=off. */
  grpcPort: number;
  /** The gateway workers, when GRPC_LISTENER=workers. */
  gateway?: Gateway;
  metricsPort: number;
  deps: RuntimeDeps;
  stop(): Promise<void>;
}

export async function runServices(
  modules: readonly AnyServiceModule[],
  options: RunOptions = {},
): Promise<RunningPlatform> {
  const config = parseConfig(options.env ?? Deno.env.toObject(), modules);
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
    tokenKeys = await loadTokenKeys(
      config.tokens.keysFile,
      config.store.backend === "sqlite" ? config.store.path : undefined,
      log,
    );
  } catch (error) {
    await Promise.allSettled([bus.close(), store.close()]);
    throw error;
  }
  // Both reads at once: a cache miss on the token check costs one store round trip.
  const deviceStatus = cachedDeviceStatus(async (accountId, deviceId, familyId) => {
    const [device, revoked] = await Promise.all([
      store.auth.devices.get(accountId, deviceId),
      familyId === undefined ? false : store.auth.refreshTokens.familyRevoked(familyId),
    ]);
    if (device === undefined) return "revoked";
    return revoked ? "session-revoked" : "active";
  });
  let blobs: BlobStore | undefined;
  try {
    blobs = config.blobs ? await openBlobStore(config.blobs, log) : undefined;
  } catch (error) {
    await Promise.allSettled([bus.close(), store.close()]);
    throw error;
  }
  const deps: RuntimeDeps = { config, log, metrics, store, bus, tokenKeys, deviceStatus };
  // What services use is measured (store and bus latency on the dashboards).
  const timedStore = instrumentedStore(store, metrics.registry);
  const timedBus = instrumentedBus(bus, metrics.registry);

  const server = new GrpcServer({
    host: config.grpc.host,
    port: config.grpc.port,
    limits: config.grpc.limits,
    trustedProxies: config.trustedProxies,
    log,
    metrics,
    authenticator: options.authenticator ? await options.authenticator(deps) : jwtAuthenticator({
      keys: tokenKeys,
      issuer: config.hosts.api,
      deviceStatus: deviceStatus.status,
    }),
  });
  const tasks: BackgroundTask[] = [];
  // Lets the gateway workers forward their clients' addresses; never leaves this process tree.
  const gatewaySecret = crypto.randomUUID();
  const readiness: Record<string, () => Promise<void>> = {
    store: () => store.ping(),
    bus: () => bus.ping(),
  };
  const stopTasks = async () => {
    for (const task of tasks.toReversed()) {
      await Promise.resolve().then(() => task.stop()).catch((error) =>
        log.warn("background task did not stop cleanly", { task: task.name, error })
      );
    }
  };
  const closeBackends = async () => {
    await Promise.allSettled([bus.close(), store.close()]);
  };
  let grpcPort = 0;
  let web: WebServer | undefined;
  let internal: WebServer | undefined;
  let gateway: Gateway | undefined;
  try {
    for (const module of modules) {
      const started = await module.start({
        platform: config,
        settings: config.services[module.name],
        log: log.child({ service: module.name }),
        metrics,
        store: scopedStore(timedStore, module.stores),
        bus: scopedBus(timedBus, module),
        tokenKeys,
        deviceStatus,
        ...(module.blobs && blobs ? { blobs } : {}),
      });
      tasks.push(...started.tasks ?? []);
      for (const [name, check] of Object.entries(started.health ?? {})) {
        readiness[`${module.name}.${name}`] = check;
      }
      registerDeclared(server, module, started.register);
    }
    if (config.grpc.listener === "in-process") grpcPort = await server.start();
    else server.markServing();
    const tls = config.http.tls
      ? {
        cert: await Deno.readTextFile(config.http.tls.certFile),
        key: await Deno.readTextFile(config.http.tls.keyFile),
      }
      : undefined;
    web = startWebServer({
      host: config.http.host,
      port: config.http.port,
      limits: config.grpc.limits,
      log,
      routes: server.routes,
      gatewaySecret,
      corsOrigins: config.http.corsOrigins,
      ...(tls ? { tls } : {}),
    });
    if (config.grpc.listener === "workers") {
      // The workers forward over plaintext loopback: with TLS on the API listener they get a
      // loopback-only listener of their own (same routes), so no certificate is involved.
      const upstream = tls
        ? internal = startWebServer({
          host: "127.0.0.1",
          port: 0,
          limits: config.grpc.limits,
          log,
          routes: server.routes,
          gatewaySecret,
        })
        : web;
      gateway = await startGateway({
        host: config.grpc.host,
        port: config.grpc.port,
        workers: config.grpc.workers,
        upstream: tls
          ? `http://127.0.0.1:${upstream.port}`
          : `http://${loopbackOf(config.http.host)}:${upstream.port}`,
        secret: gatewaySecret,
        routes: server.routes,
        limits: config.grpc.limits,
        log,
        metrics,
      });
      grpcPort = gateway.port;
      const workers = gateway;
      readiness["grpc-workers"] = () =>
        workers.listening > 0
          ? Promise.resolve()
          : Promise.reject(new Error("no gRPC gateway worker listens"));
    }
  } catch (error) {
    await gateway?.stop();
    await web?.close();
    await internal?.close();
    await server.shutdown(0);
    await stopTasks();
    await closeBackends();
    throw error;
  }
  const ops = startOpsServer({
    host: config.metrics.host,
    port: config.metrics.port,
    metrics,
    log,
    readiness,
  });
  const httpPort = web.port;
  log.info("ready", {
    http: `${config.http.tls ? "https" : "http"}://${config.http.host}:${httpPort}`,
    grpc: grpcPort === 0 ? "off" : `${config.grpc.host}:${grpcPort} (${config.grpc.listener})`,
    metrics: `http://${config.metrics.host}:${ops.port}/metrics`,
    store: store.info.backend,
    bus: bus.info.backend,
    backgroundTasks: tasks.map((task) => task.name),
  });

  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      log.info("stopping: draining calls", { graceMs: config.shutdownGraceMs });
      await gateway?.stop();
      await server.shutdown(config.shutdownGraceMs);
      if (internal) await closeWithin(internal.close(), config.shutdownGraceMs, () => {});
      await closeWithin(web.close(), config.shutdownGraceMs, () =>
        log.warn("the HTTP listener still had open connections after the grace period"));
      await stopTasks();
      await ops.close();
      await closeBackends();
      log.info("stopped");
    })();
  return {
    config,
    httpPort,
    grpcPort,
    ...(gateway ? { gateway } : {}),
    metricsPort: ops.port,
    deps,
    stop,
  };
}

/** Waits for `closing` at most `ms` (a client holding a request open cannot block a stop). */
async function closeWithin(closing: Promise<void>, ms: number, onTimeout: () => void) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), Math.max(ms, 100));
  });
  if (await Promise.race([closing, timedOut]) === "timeout") onTimeout();
  clearTimeout(timer);
}

/** Where the gateway workers reach the HTTP listener on this machine. */
function loopbackOf(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}

/** Lets a module register its gRPC services, then checks they are exactly the declared ones. */
function registerDeclared(
  server: GrpcServer,
  module: AnyServiceModule,
  register: (server: GrpcServer) => void,
) {
  const before = server.services.length;
  register(server);
  const registered = server.services.slice(before);
  const declared = [...module.grpcServices].sort().join(", ");
  if ([...registered].sort().join(", ") !== declared) {
    throw new Error(
      `service "${module.name}" registered [${registered.join(", ")}] but declares [${declared}]`,
    );
  }
}

/**
 * Entry point helper for `main.ts` files: runs the modules until SIGINT/SIGTERM, then shuts
 * down gracefully. Startup errors print one clear line and exit non-zero.
 */
export async function main(modules: readonly AnyServiceModule[], options: RunOptions = {}) {
  // A compiled service binary started again by its gateway supervisor: be the worker.
  if (Deno.env.get(GATEWAY_WORKER_ENV) === "1") {
    runGatewayWorker();
    return await new Promise<never>(() => {});
  }
  let platform: RunningPlatform;
  try {
    platform = await runServices(modules, options);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    Deno.stderr.writeSync(new TextEncoder().encode(`guardyn: cannot start: ${message}\n`));
    Deno.exit(1);
  }
  const { config, grpcPort, httpPort, metricsPort } = platform;
  const scheme = config.http.tls ? "https" : "http";
  const banner =
    `Guardyn is running (store: ${platform.deps.store.info.backend}, bus: ${platform.deps.bus.info.backend})\n` +
    `  API      ${scheme}://${config.http.host}:${httpPort}  (gRPC-Web and Connect: the SDK, browsers)\n` +
    (grpcPort === 0
      ? ""
      : `  gRPC     ${config.grpc.host}:${grpcPort}  (native gRPC, ${config.grpc.listener})\n`) +
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
