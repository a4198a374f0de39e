// deno-lint-ignore-file no-console -- load scripts report to the terminal
/**
 * Presence load, loopback only, bounded in count and time, on one embedded instance:
 *  1. the ceiling: a bare Deno.serve server (a child process, as the service is) holding the
 *     same number of HTTP/2 response streams on the same kind of lanes, pushing one small frame
 *     to all of them at once (p50/p99 of arrival at this client);
 *  2. N WatchPresence streams (default 10,000) of `--accounts` watcher accounts, each holding a
 *     grant of one owner; the owner changes status `--changes` times and every stream's arrival
 *     is timed from the SetPresence call (p50/p99/max), with the server's CPU per delivered
 *     update and its memory per stream;
 *  3. presence CPU per online user: the watcher accounts heartbeat as fast as the server
 *     takes them; server CPU per heartbeat, scaled to one heartbeat per interval (30 s).
 *
 * The server runs as a child process (`services/presence/main.ts`). Accounts and devices are
 * written straight into the store and tokens minted with the deployment's keys.
 *
 *   deno run -A tests/load/presence_load.ts [--streams=10000] [--accounts=2500] [--changes=20]
 */

import { join } from "node:path";
import { openStore } from "../../services/runtime/open_store.ts";
import { parseConfig } from "../../services/runtime/config.ts";
import { createLogger } from "../../services/platform/log.ts";
import {
  generateTokenKeyFile,
  importTokenKeys,
  TokenIssuer,
} from "../../services/platform/tokens.ts";
import { migrate, readMigrateSettings } from "../../tasks/migrate.ts";
import {
  PresenceLevel,
  PresenceServiceClient,
  PresenceServiceService,
  PresenceStatus,
  type WatchPresenceResponse,
} from "../../proto/gen/guardyn/v1/presence.ts";
import { newPresenceCapability, presenceGrantHash } from "../../crypto/presence_grant.ts";
import { bearer, unary } from "../support/grpc.ts";
import { webClient } from "../support/web.ts";
import { sleep, waitUntil } from "../support/wait.ts";
import { spawn } from "./child_process.ts";

const args = Object.fromEntries(
  Deno.args.filter((a) => a.startsWith("--")).map((a) => {
    const [key, value] = a.slice(2).split("=");
    return [key!, value ?? "true"];
  }),
);
const STREAMS = bounded(Number(args.streams ?? 10_000), 10, 20_000);
const ACCOUNTS = bounded(Number(args.accounts ?? 2_500), 1, 10_000);
const CHANGES = bounded(Number(args.changes ?? 20), 1, 200);
const HEARTBEAT_SECONDS = bounded(Number(args["heartbeat-seconds"] ?? 5), 1, 60);
/** Streams per HTTP/2 connection: under hyper's per-connection limit, as the SDK would. */
const PER_LANE = 100;
const MAIN = new URL("../../services/presence/main.ts", import.meta.url).pathname;
const SELF = new URL(import.meta.url).pathname;
const INTERVAL_MS = 30_000;

type Presence = InstanceType<typeof PresenceServiceClient>;

function bounded(value: number, min: number, max: number): number {
  if (!Number.isFinite(value)) throw new Error("numeric arguments must be numbers");
  return Math.min(max, Math.max(min, Math.floor(value)));
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round = (n: number, digits = 1) => Number(n.toFixed(digits));
const started = performance.now();
const progress = (what: string) =>
  console.error(`[${((performance.now() - started) / 1000).toFixed(1)} s] ${what}`);

// ---------------------------------------------------------------------------------------------
// 1. The ceiling: Deno.serve pushing one frame to every open response stream.

/** The ceiling's server, in a child process like the presence server: streams and a trigger. */
function ceilingServer() {
  const controllers = new Set<ReadableStreamDefaultController<Uint8Array>>();
  // The same frame size as a presence update on the wire (a gRPC-Web frame of ~60 bytes).
  const frame = new Uint8Array(60);
  Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => console.log(`ceiling http://127.0.0.1:${port}`),
  }, (request) => {
    if (new URL(request.url).pathname === "/fire") {
      for (const controller of controllers) controller.enqueue(frame);
      return new Response("fired");
    }
    let mine: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        mine = controller;
        controllers.add(controller);
        controller.enqueue(new Uint8Array([0]));
      },
      cancel() {
        controllers.delete(mine);
      },
    });
    return new Response(body, { headers: { "content-type": "application/octet-stream" } });
  });
}

async function ceiling() {
  const child = spawn(["run", "-A", SELF, "--role=ceiling-server"], {});
  const url = (await child.line(/ceiling (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
  const lanes = Array.from(
    { length: Math.ceil(STREAMS / PER_LANE) + 1 },
    () => Deno.createHttpClient({ http2: true, http1: false }),
  );
  const latencies: number[] = [];
  let firedAt = 0;
  let ready = 0;
  const readers: ReadableStreamDefaultReader<Uint8Array>[] = [];
  const reading = Array.from({ length: STREAMS }, async (_, i) => {
    const client = lanes[Math.floor(i / PER_LANE)]!;
    const response = await fetch(`${url}/stream`, { method: "POST", client } as RequestInit);
    const reader = response.body!.getReader();
    readers.push(reader);
    await reader.read();
    ready++;
    for (;;) {
      const { done } = await reader.read();
      if (done) return;
      latencies.push(performance.now() - firedAt);
    }
  });
  try {
    await waitUntil(() => ready === STREAMS, "ceiling streams open", 120_000);
    const trigger = lanes.at(-1)!;
    for (let n = 0; n < CHANGES; n++) {
      const expected = (n + 1) * STREAMS;
      firedAt = performance.now();
      await (await fetch(`${url}/fire`, { method: "POST", client: trigger } as RequestInit)).text();
      await waitUntil(() => latencies.length >= expected, "ceiling frames", 60_000);
      await sleep(300);
    }
    latencies.sort((a, b) => a - b);
    return {
      streams: ready,
      p50Ms: round(percentile(latencies, 50), 2),
      p99Ms: round(percentile(latencies, 99), 2),
      maxMs: round(latencies.at(-1) ?? NaN, 2),
    };
  } finally {
    for (const reader of readers) await reader.cancel().catch(() => {});
    await Promise.allSettled(reading);
    await child.kill();
    for (const lane of lanes) lane.close();
  }
}

// ---------------------------------------------------------------------------------------------
// 2 and 3. The presence service.

async function deploy() {
  const dir = await Deno.makeTempDir({ prefix: "guardyn-presence-load-" });
  const keysFile = join(dir, "token-keys.json");
  await Deno.writeTextFile(keysFile, JSON.stringify(await generateTokenKeyFile()));
  const env: Record<string, string> = {
    DOMAIN: "guardyn.load",
    LOG_LEVEL: "warn",
    GRPC_PORT: "0",
    GRPC_LISTENER: "in-process",
    HTTP_PORT: "0",
    METRICS_PORT: "0",
    TOKEN_KEYS_FILE: keysFile,
    STORE_BACKEND: "sqlite",
    SQLITE_PATH: join(dir, "guardyn.db"),
    GRPC_MAX_CONCURRENT_STREAMS: "100000",
    PRESENCE_MAX_WATCHES: String(STREAMS + 100),
    PRESENCE_WATCHES_PER_DEVICE: String(Math.ceil(STREAMS / ACCOUNTS) + 1),
    // The load's own pace is what is measured, not the per-device limits.
    PRESENCE_UPDATES_PER_MINUTE: "10000",
  };
  await migrate(readMigrateSettings(env), () => {});
  const child = spawn(["run", "-A", MAIN], env);
  const httpPort = Number((await child.line(/API\s+http:\/\/127\.0\.0\.1:(\d+)/))[1]);
  const metricsPort = Number((await child.line(/metrics\s+http:\/\/127\.0\.0\.1:(\d+)/))[1]);
  const config = parseConfig(env);
  const store = await openStore(config.store, createLogger({ level: "warn" }), { migrate: false });
  const keys = await importTokenKeys(JSON.parse(await Deno.readTextFile(keysFile)));
  const issuer = new TokenIssuer(keys, config.hosts.api, 3600);
  return {
    httpAddress: `127.0.0.1:${httpPort}`,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    child,
    store,
    issuer,
    async cleanup() {
      await child.kill();
      await store.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

type Deployment = Awaited<ReturnType<typeof deploy>>;

interface LoadAccount {
  accountId: string;
  token: string;
}

async function accounts(d: Deployment, count: number): Promise<LoadAccount[]> {
  const now = Date.now();
  const out: LoadAccount[] = [];
  const one = async () => {
    const accountId = crypto.randomUUID();
    const deviceId = crypto.randomUUID();
    await d.store.auth.accounts.create({
      id: accountId,
      username: `load_${accountId.replaceAll("-", "").slice(0, 20)}`,
      passwordHash: "$argon2id$v=19$m=19456,t=2,p=1$bG9hZA$bG9hZA",
      createdAtMs: now,
    });
    await d.store.auth.devices.create({
      accountId,
      id: deviceId,
      name: "load",
      platform: 7,
      registrationId: 1000,
      createdAtMs: now,
      lastSeenAtMs: now,
    }, 100);
    out.push({ accountId, token: (await d.issuer.issue({ accountId, deviceId })).token });
  };
  for (let i = 0; i < count; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, count - i) }, one));
  }
  return out;
}

async function measurePresence() {
  const d = await deploy();
  const lanes = Array.from(
    { length: Math.ceil(STREAMS / PER_LANE) + 1 },
    () => webClient<Presence>(PresenceServiceService, d.httpAddress),
  );
  const control = lanes.at(-1)!;
  const streams: { cancel(): void }[] = [];
  try {
    progress(`writing ${ACCOUNTS + 1} accounts`);
    const [owner, ...watchers] = await accounts(d, ACCOUNTS + 1);
    // The owner grants every watcher; each watcher's capability would come in an E2EE message.
    const capabilities = watchers.map(() => newPresenceCapability());
    for (let i = 0; i < watchers.length; i += 100) {
      const grants = watchers.slice(i, i + 100).map((w, j) => ({
        grantHash: presenceGrantHash(capabilities[i + j]!, w.accountId),
        level: PresenceLevel.PRESENCE_LEVEL_LAST_SEEN,
        createdAtMs: 0,
      }));
      await unary(control.grantPresence.bind(control), { grants }, owner!.token);
    }
    await unary(control.heartbeat.bind(control), {}, owner!.token);
    await sleep(1000);
    const rssBefore = await d.child.rss();
    progress(`opening ${STREAMS} WatchPresence streams`);
    let snapshots = 0;
    let failed = 0;
    const latencies: number[] = [];
    let changedAt = 0;
    let expectedText = "";
    const openStarted = performance.now();
    for (let i = 0; i < STREAMS; i++) {
      const w = watchers[i % watchers.length]!;
      const lane = lanes[Math.floor(i / PER_LANE)]!;
      const call = lane.watchPresence({
        targets: [{ accountId: owner!.accountId, capability: capabilities[i % watchers.length]! }],
      }, bearer(w.token));
      let first = true;
      call.on("data", (m: WatchPresenceResponse) => {
        if (first) {
          first = false;
          snapshots++;
        } else if (m.presence?.customText === expectedText) {
          latencies.push(performance.now() - changedAt);
        }
      });
      call.on("error", () => failed++);
      streams.push(call);
      if (i % 500 === 499) {
        await waitUntil(() => snapshots + failed > i - 100, "streams open", 60_000);
      }
    }
    await waitUntil(() => snapshots + failed === STREAMS, "snapshots", 120_000);
    const openSeconds = (performance.now() - openStarted) / 1000;
    await sleep(2000);
    const rssAfter = await d.child.rss();
    progress(`${snapshots} streams open (${failed} failed); ${CHANGES} status changes`);
    const cpuBefore = await d.child.cpuSeconds();
    const perChange: number[] = [];
    for (let n = 0; n < CHANGES; n++) {
      const before = latencies.length;
      expectedText = `change ${n}`;
      changedAt = performance.now();
      await unary(control.setPresence.bind(control), {
        status: n % 2 ? PresenceStatus.PRESENCE_STATUS_ONLINE : PresenceStatus.PRESENCE_STATUS_AWAY,
        customText: expectedText,
      }, owner!.token);
      await waitUntil(() => latencies.length - before >= snapshots, "every watcher", 60_000);
      perChange.push(performance.now() - changedAt);
      await sleep(300);
    }
    const changeCpu = await d.child.cpuSeconds() - cpuBefore;
    const fanOut = await serverFanOut(d.metricsUrl);
    latencies.sort((a, b) => a - b);
    progress(`heartbeats for ${HEARTBEAT_SECONDS} s`);
    const heartbeats = await heartbeatLoad(d, lanes, watchers);
    return {
      streams: snapshots,
      failed,
      openSeconds: round(openSeconds),
      changes: CHANGES,
      updatesDelivered: latencies.length,
      p50Ms: round(percentile(latencies, 50), 2),
      p99Ms: round(percentile(latencies, 99), 2),
      maxMs: round(latencies.at(-1) ?? NaN, 2),
      slowestChangeMs: round(Math.max(...perChange), 1),
      ...fanOut,
      serverCpuUsPerUpdate: round((changeCpu * 1e6) / Math.max(1, latencies.length), 2),
      rssBytesPerStream: Math.round((rssAfter - rssBefore) / Math.max(1, snapshots)),
      ...heartbeats,
    };
  } finally {
    for (const stream of streams) stream.cancel();
    await sleep(500);
    await d.cleanup();
    for (const lane of lanes) lane.close();
  }
}

/**
 * The server's own view of each change: from reaching the instance to its last write to a
 * watcher (the guardyn_presence_fanout_seconds histogram): mean, and the share within 500 ms.
 */
async function serverFanOut(url: string) {
  const text = await (await fetch(url)).text();
  const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? NaN);
  const count = value(/^guardyn_presence_fanout_seconds_count(?:\{[^}]*\})? (\S+)$/m);
  const sum = value(/^guardyn_presence_fanout_seconds_sum(?:\{[^}]*\})? (\S+)$/m);
  const within = value(/^guardyn_presence_fanout_seconds_bucket\{le="0\.5"[^}]*\} (\S+)$/m);
  const within250 = value(/^guardyn_presence_fanout_seconds_bucket\{le="0\.25"[^}]*\} (\S+)$/m);
  return {
    serverFanOutMeanMs: round((sum / count) * 1000, 1),
    serverFanOutWithin250Ms: `${within250}/${count}`,
    serverFanOutWithin500Ms: `${within}/${count}`,
  };
}

/**
 * Heartbeats of every watcher account in rounds (64 in flight), as many rounds as the per-device
 * limit lets through in the run (its burst is 10), so no call is refused.
 */
async function heartbeatLoad(d: Deployment, lanes: Presence[], watchers: LoadAccount[]) {
  const cpuBefore = await d.child.cpuSeconds();
  const begun = performance.now();
  const until = begun + HEARTBEAT_SECONDS * 1000;
  let done = 0;
  let refused = 0;
  for (let round = 0; round < 8 && performance.now() < until; round++) {
    let next = 0;
    await Promise.all(Array.from({ length: 64 }, async () => {
      for (let i = next++; i < watchers.length; i = next++) {
        const lane = lanes[i % (lanes.length - 1)]!;
        await unary(lane.heartbeat.bind(lane), {}, watchers[i]!.token).then(
          () => done++,
          () => refused++,
        );
      }
    }));
  }
  const seconds = (performance.now() - begun) / 1000;
  const cpu = await d.child.cpuSeconds() - cpuBefore;
  const usPerHeartbeat = (cpu * 1e6) / Math.max(1, done);
  return {
    heartbeatsPerSecond: Math.round(done / seconds),
    heartbeatsRefused: refused,
    serverCpuUsPerHeartbeat: round(usPerHeartbeat, 1),
    // One heartbeat per interval per online user: CPU share of one core per 1,000 online users.
    cpuPercentPer1000OnlineUsers: round((usPerHeartbeat * 1000 / (INTERVAL_MS / 1000)) / 1e4, 3),
  };
}

if (import.meta.main && args.role === "ceiling-server") {
  ceilingServer();
} else if (import.meta.main) {
  progress(`ceiling: ${STREAMS} bare Deno.serve streams`);
  const ceilingRun = await ceiling();
  progress(JSON.stringify(ceilingRun));
  const presence = await measurePresence();
  console.log(JSON.stringify(
    {
      machine: { cpus: navigator.hardwareConcurrency, deno: Deno.version.deno },
      ceiling: ceilingRun,
      presence,
    },
    null,
    2,
  ));
}
