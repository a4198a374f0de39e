/**
 * The operations HTTP endpoint: Prometheus `/metrics`, liveness `/healthz` and readiness
 * `/readyz` (every backend answers a ping). Separate from the gRPC port so it can stay
 * cluster-internal.
 */

import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";

export interface OpsServerOptions {
  host: string;
  port: number;
  metrics: Metrics;
  log: Logger;
  /** Readiness probes by name; all must resolve for /readyz to answer 200. */
  readiness: Record<string, () => Promise<void>>;
}

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

const PROBE_TIMEOUT_MS = 2_000;

export function startOpsServer(options: OpsServerOptions): OpsServer {
  const server = Deno.serve({
    hostname: options.host,
    port: options.port,
    onListen: () => {},
  }, async (request) => {
    const path = new URL(request.url).pathname;
    if (request.method !== "GET") return new Response("method not allowed\n", { status: 405 });
    if (path === "/metrics") {
      return new Response(await options.metrics.registry.metrics(), {
        headers: { "content-type": options.metrics.registry.contentType },
      });
    }
    if (path === "/healthz") return new Response("ok\n");
    if (path === "/readyz") {
      const failures = await checkReadiness(options.readiness);
      if (failures.length === 0) return new Response("ready\n");
      options.log.warn("not ready", { failures });
      return new Response(`not ready: ${failures.join(", ")}\n`, { status: 503 });
    }
    return new Response("not found\n", { status: 404 });
  });
  return { port: server.addr.port, close: () => server.shutdown() };
}

async function checkReadiness(probes: Record<string, () => Promise<void>>): Promise<string[]> {
  const results = await Promise.all(
    Object.entries(probes).map(async ([name, probe]) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          probe(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error("timeout")), PROBE_TIMEOUT_MS);
          }),
        ]);
        return undefined;
      } catch {
        return name;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return results.filter((name): name is string => name !== undefined);
}
