/**
 * Auth service load: prekey bundle fetches per second with p50/p99 latency through gRPC, and
 * logins per second at the configured Argon2id cost, on the embedded store and on Cassandra.
 * Loopback only; bounded in count and time.
 *
 *   deno run -A tests/load/auth_load.ts [embedded|cluster|both] [seconds]
 */

import {
  clients,
  login,
  publishKeys,
  register,
  type TestDevice,
} from "../support/accounts_test_kit.ts";
import { unary } from "../support/grpc.ts";
import { join } from "node:path";
import { type Backend, clusterEnv, spawnPlatform } from "../support/platform.ts";

const mode = Deno.args[0] ?? "both";
const seconds = Number(Deno.args[1] ?? "10");
const CONCURRENCY = Number(Deno.env.get("CONCURRENCY") ?? "8");
const TARGETS = 20;
const MAX_REQUESTS = 200_000;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function measure(backend: Backend) {
  const dir = await Deno.makeTempDir({ prefix: "guardyn-load-" });
  const storeEnv = backend === "cluster"
    ? await clusterEnv(dir)
    : { SQLITE_PATH: join(dir, "guardyn.db") };
  // The service runs in its own process, as deployed; this process only generates load.
  const platform = await spawnPlatform("services/auth/main.ts", {
    ...storeEnv,
    PREKEY_FETCH_BURST: "10000",
    PREKEY_FETCH_PER_MINUTE: "100000",
    REGISTRATION_BURST: "100000",
    LOGIN_FAILURES_BURST: "1000",
    LOGIN_ATTEMPTS_BURST: "100000",
    LOGIN_ATTEMPTS_PER_MINUTE: "100000",
    // Measures claims at full rate: the per-hour one-time budgets would otherwise serve
    // bundles without one-time keys after the first 20 per target.
    ONE_TIME_CLAIMS_PER_TARGET_PER_HOUR: "100000",
    ONE_TIME_CLAIMS_PER_ACCOUNT_PER_HOUR: "100000",
  });
  const lanes = Array.from({ length: 4 }, () => clients(platform.address));
  try {
    const requester = await register(lanes[0]!);
    const targets: TestDevice[] = [];
    for (let i = 0; i < TARGETS; i++) {
      const target = await register(lanes[0]!);
      await publishKeys(lanes[0]!, target, { oneTime: 100, kem: 10 });
      targets.push(target);
    }

    const latencies: number[] = [];
    const cpuBefore = await platform.cpuSeconds();
    const deadline = performance.now() + seconds * 1000;
    let issued = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, async (_, worker) => {
      const c = lanes[worker % lanes.length]!;
      while (performance.now() < deadline && issued < MAX_REQUESTS) {
        const target = targets[issued++ % targets.length]!;
        const t0 = performance.now();
        await unary(c.keys.fetchPrekeyBundles.bind(c.keys), {
          accountId: target.accountId,
          deviceId: "",
        }, requester.accessToken);
        latencies.push(performance.now() - t0);
      }
    }));
    const elapsed = (performance.now() - started) / 1000;
    const serverCpu = (await platform.cpuSeconds()) - cpuBefore;
    latencies.sort((a, b) => a - b);

    const loginDeadline = performance.now() + Math.min(seconds, 5) * 1000;
    let logins = 0;
    const loginStarted = performance.now();
    const user = targets[0]!;
    await Promise.all(Array.from({ length: 2 }, async () => {
      while (performance.now() < loginDeadline && logins < 10_000) {
        await login(lanes[0]!, user.username, "laptop", user.deviceId);
        logins++;
      }
    }));
    const loginElapsed = (performance.now() - loginStarted) / 1000;

    return {
      backend,
      fetches: latencies.length,
      fetchesPerSecond: Math.round(latencies.length / elapsed),
      p50Ms: percentile(latencies, 50).toFixed(2),
      p99Ms: percentile(latencies, 99).toFixed(2),
      // Server CPU per fetch, and what one fully used core would serve at that cost.
      serverCpuUsPerFetch: Math.round((serverCpu / latencies.length) * 1e6),
      fetchesPerServerCore: Math.round(latencies.length / serverCpu),
      loginsPerSecond: (logins / loginElapsed).toFixed(1),
    };
  } finally {
    lanes.forEach((c) => c.close());
    await platform.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

const backends: Backend[] = mode === "both" ? ["embedded", "cluster"] : [mode as Backend];
const results = [];
for (const backend of backends) results.push(await measure(backend));
console.log(`auth load, ${seconds} s per phase, ${CONCURRENCY} concurrent callers, loopback`);
console.table(results);
Deno.exit(0);
