/**
 * Supervises the native gRPC gateway workers (grpc_gateway_worker.ts): N processes sharing
 * GRPC_PORT through SO_REUSEPORT, each restarted as soon as it exits. An nghttp2 abort in one
 * of them (denoland/deno#36788) loses that worker's open calls; the port keeps serving through
 * the others, and the replacement listens again in well under a second.
 */

import net from "node:net";
import client from "prom-client";
import type { Logger } from "../platform/log.ts";
import type { Metrics } from "../platform/metrics.ts";
import type { Route } from "../platform/grpc_server.ts";
import type { GrpcLimits } from "../platform/config.ts";
import type { GatewayLimits, GatewayRoute } from "./grpc_gateway_worker.ts";
import { sleep } from "../platform/time.ts";

export interface GatewayOptions {
  host: string;
  /** 0 picks a free port once, shared by every worker. */
  port: number;
  workers: number;
  upstream: string;
  secret: string;
  routes: ReadonlyMap<string, Route>;
  limits: GrpcLimits;
  log: Logger;
  metrics: Metrics;
}

export interface Gateway {
  port: number;
  /** Workers listening now. */
  readonly listening: number;
  /** Workers restarted since start. */
  readonly restarts: number;
  /** Process ids of the running workers. */
  readonly pids: number[];
  stop(): Promise<void>;
}

const WORKER = new URL("./grpc_gateway_worker.ts", import.meta.url).pathname;
/** Set in a worker's environment: a compiled service binary then runs as a worker (main.ts). */
export const GATEWAY_WORKER_ENV = "GUARDYN_GATEWAY_WORKER";

/**
 * How to start a worker: `deno run` on the worker module, or (a compiled service binary, which
 * cannot run another script) this binary again with GUARDYN_GATEWAY_WORKER=1.
 */
function workerCommand(): string[] {
  const isDeno = /^deno(\.exe)?$/.test(Deno.execPath().split(/[\\/]/).pop() ?? "");
  // The offline image form (tasks/offline_image.ts) runs from a prepared cache only.
  const cached = Deno.env.get("GUARDYN_CACHED_ONLY") === "1" ? ["--cached-only"] : [];
  return isDeno
    ? ["run", ...cached, "--allow-net", "--allow-env", "--allow-read", "--no-prompt", WORKER]
    : [];
}
/** A worker that dies this soon after starting waits before the next start (crash loop). */
const CRASH_LOOP_MS = 1_000;

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const port = options.port === 0 ? await freePort(options.host) : options.port;
  const routes: GatewayRoute[] = [...options.routes.values()].map(({ method }) => ({
    path: method.path,
    requestStream: method.requestStream,
    responseStream: method.responseStream,
  }));
  const limits: GatewayLimits = {
    maxRequestBytes: options.limits.maxRequestBytes,
    maxResponseBytes: options.limits.maxResponseBytes,
    maxConcurrentStreams: options.limits.maxConcurrentStreams,
  };
  const env = {
    GATEWAY_ROUTES: JSON.stringify(routes),
    GATEWAY_LIMITS: JSON.stringify(limits),
    GATEWAY_UPSTREAM: options.upstream,
    GATEWAY_SECRET: options.secret,
    GRPC_HOST: options.host,
    GRPC_PORT: String(port),
  };
  const restartsTotal = new client.Counter({
    name: "guardyn_grpc_worker_restarts_total",
    help: "Native gRPC gateway workers restarted after exiting (an nghttp2 abort, a crash)",
    registers: [options.metrics.registry],
  });
  let stopping = false;
  let listening = 0;
  let restarts = 0;
  const children = new Set<Deno.ChildProcess>();

  const spawnWorker = async (index: number): Promise<void> => {
    const child = new Deno.Command(Deno.execPath(), {
      args: workerCommand(),
      // Only what a worker needs: no store or bus credentials reach it.
      env: { ...runtimeEnv(), ...env, [GATEWAY_WORKER_ENV]: "1" },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    children.add(child);
    const startedAt = Date.now();
    const ready = Promise.withResolvers<void>();
    let isListening = false;
    void (async () => {
      for await (const line of child.stdout.pipeThrough(new TextDecoderStream())) {
        if (!isListening && line.includes("listening")) {
          isListening = true;
          listening++;
          ready.resolve();
        }
      }
    })();
    let lastError = "";
    void (async () => {
      for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
        lastError = (lastError + text).slice(-2_000);
      }
    })();
    void child.status.then(async (status) => {
      children.delete(child);
      if (isListening) listening--;
      ready.reject(new Error(`gRPC gateway worker exited before listening: ${lastError.trim()}`));
      if (stopping) return;
      restarts++;
      restartsTotal.inc();
      options.log.error("gRPC gateway worker exited; starting a new one", {
        worker: index,
        code: status.code,
        signal: status.signal,
        lastError: lastError.trim().split("\n").slice(-3).join(" | "),
      });
      if (Date.now() - startedAt < CRASH_LOOP_MS) await sleep(CRASH_LOOP_MS);
      if (!stopping) spawnWorker(index).catch(() => {});
    });
    await ready.promise;
  };

  await Promise.all(Array.from({ length: options.workers }, (_, index) => spawnWorker(index)));
  return {
    port,
    get listening() {
      return listening;
    },
    get restarts() {
      return restarts;
    },
    get pids() {
      return [...children].map((child) => child.pid);
    },
    async stop() {
      stopping = true;
      await Promise.all([...children].map(async (child) => {
        try {
          child.kill("SIGTERM");
        } catch { /* already gone */ }
        await child.status;
      }));
    },
  };
}

/** What Deno itself needs to find its caches and temporary directory. */
export function runtimeEnv(): Record<string, string> {
  const names = ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR", "NO_COLOR"];
  return Object.fromEntries(
    names.flatMap((name) => {
      const value = Deno.env.get(name);
      return value === undefined ? [] : [[name, value]];
    }),
  );
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen({ host, port: 0 }, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
