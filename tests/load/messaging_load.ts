/**
 * Messaging load, in one run, loopback only, bounded in count and time:
 *  1. the ceilings: a bare grpc-js unary echo and a bare Deno.serve gRPC-Web echo over fetch
 *     (round trips/s, p50/p99), and the transport floor of Guardyn's message shape (unary send,
 *     push on a stream, ack in it; relay_floor.ts);
 *  2. Guardyn's sustained send → deliver → ack rate with send→deliver p50/p99, on the embedded
 *     store and on Cassandra + JetStream, with sends as SendMessage calls and on SendStream,
 *     over the SDK's transport (gRPC-Web on Deno.serve) and, with `embedded-grpc`, over the
 *     grpc-js path (native gRPC in the same instance) for comparison;
 *  3. send→deliver p50/p99 at a fixed 1,000 messages/s on both, both ways of sending;
 *  4. N idle Receive streams on one instance (default 10,000) with the memory per stream, and
 *     the send→deliver latency while they are open.
 *
 * Servers run as child processes (`deno run -A services/messaging/main.ts`, and this file in
 * its echo-server role), so the load generator has the other core. Accounts and devices are
 * written straight into the store and tokens minted with the deployment's keys: the auth
 * service's own limits and Argon2id cost are not what is measured here.
 *
 *   deno run -A tests/load/messaging_load.ts [--seconds=5] [--idle=10000] [--only=echo,web-echo,floor,embedded,embedded-grpc,cluster,idle]
 *     [--write=docs/BENCHMARKS.md]   (the figures, between the report markers: load_report.ts)
 */

import * as grpc from "@grpc/grpc-js";
import { join } from "node:path";
import { openStore } from "../../services/runtime/open_store.ts";
import type { Store } from "../../services/store/ports.ts";
import { parseConfig } from "../../services/runtime/config.ts";
import { createLogger } from "../../services/platform/log.ts";
import {
  generateTokenKeyFile,
  importTokenKeys,
  TokenIssuer,
} from "../../services/platform/tokens.ts";
import { migrate, readMigrateSettings } from "../../tasks/migrate.ts";
import { deleteStreams } from "../../services/bus/conformance/nats_server.ts";
import { measureRelayFloor, relayServer } from "./relay_floor.ts";
import { listenOnLoopback, rawMethod } from "./raw_grpc.ts";
import { type LoadRun, writeLoadReport } from "./load_report.ts";
import { SendStreamSession } from "../../services/messaging/messaging_test_kit.ts";
import {
  EnvelopeType,
  MessagingServiceClient,
  MessagingServiceService,
  type ReceiveRequest,
  type ReceiveResponse,
  type SendMessageRequest,
  type SendMessageResponse,
} from "../../proto/gen/guardyn/v1/messaging.ts";
import { sleep, waitUntil } from "../support/wait.ts";
import { type Child, ownCpuSeconds, spawn } from "./child_process.ts";
import { webClient } from "../support/web.ts";

const args = Object.fromEntries(
  Deno.args.filter((a) => a.startsWith("--")).map((a) => {
    const [key, value] = a.slice(2).split("=");
    return [key!, value ?? "true"];
  }),
);
const SECONDS = bounded(Number(args.seconds ?? 5), 1, 60);
const IDLE_STREAMS = bounded(Number(args.idle ?? 10_000), 10, 20_000);
const ONLY = new Set(
  (args.only ?? "echo,web-echo,floor,embedded,embedded-grpc,cluster,idle").split(","),
);
const CONCURRENCY = bounded(Number(args.concurrency ?? 64), 1, 512);
const PAYLOAD = new Uint8Array(256).map((_, i) => i);
const MAIN = new URL("../../services/messaging/main.ts", import.meta.url).pathname;
const SELF = new URL(import.meta.url).pathname;
const DOMAIN = "guardyn.load";
const OWN_CONNECTION = { "grpc.use_local_subchannel_pool": 1, "grpc.enable_channelz": 0 };
/** `--profile=FILE`: CPU-profile the server during the sustained run (V8 .cpuprofile JSON). */
const PROFILE = args.profile;
/**
 * The fixed rate measured per backend. One Cassandra node on this 2-core machine sustains about
 * 200 sends/s, so 1,000/s only measures its collapse there; `--cluster-rate=1000` runs it.
 */
const FIXED_RATE = {
  embedded: 1000,
  cluster: bounded(Number(args["cluster-rate"] ?? 100), 10, 5000),
};
const INSPECT_PORT = 9339;

function bounded(value: number, min: number, max: number): number {
  if (!Number.isFinite(value)) throw new Error("numeric arguments must be numbers");
  return Math.min(max, Math.max(min, Math.floor(value)));
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const started = performance.now();
/** Progress on stderr; the results go to stdout as JSON at the end. */
const progress = (what: string) =>
  console.error(`[${((performance.now() - started) / 1000).toFixed(1)} s] ${what}`);
const round = (n: number, digits = 1) => Number(n.toFixed(digits));

// ---------------------------------------------------------------------------------------------
// 1. The ceiling: a bare grpc-js echo in a child process.

const ECHO_METHOD = rawMethod("/guardyn.load.Echo/Echo");

async function echoServer(): Promise<void> {
  const server = new grpc.Server({ "grpc.enable_channelz": 0 });
  server.addService({ echo: ECHO_METHOD }, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
      callback(null, call.request),
  });
  console.log(`echo listening ${await listenOnLoopback(server)}`);
}

async function measureEcho() {
  const child = spawn(["run", "-A", SELF, "--role=echo-server"], {});
  const port = Number((await child.line(/echo listening (\d+)/))[1]);
  const Echo = grpc.makeGenericClientConstructor({ echo: ECHO_METHOD }, "Echo");
  const lanes = Array.from(
    { length: 4 },
    () =>
      new Echo(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), OWN_CONNECTION) as unknown as
        & grpc.Client
        & EchoClient,
  );
  const result = await echoRun(lanes);
  lanes.forEach((lane) => lane.close());
  await child.kill();
  return result;
}

/** The other ceiling: Deno.serve answering gRPC-Web with the request's message. */
function webEchoServer(): void {
  const trailer = new TextEncoder().encode("grpc-status:0\r\n");
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const body = new Uint8Array(await request.arrayBuffer());
    const out = new Uint8Array(body.length + 5 + trailer.length);
    out.set(body);
    out[body.length] = 0x80;
    new DataView(out.buffer).setUint32(body.length + 1, trailer.length);
    out.set(trailer, body.length + 5);
    return new Response(out, { headers: { "content-type": "application/grpc-web+proto" } });
  });
  console.log(`web echo listening ${server.addr.port}`);
}

async function measureWebEcho() {
  const child = spawn(["run", "-A", SELF, "--role=web-echo-server"], {});
  const port = Number((await child.line(/web echo listening (\d+)/))[1]);
  const lanes = Array.from(
    { length: 4 },
    () => webClient<EchoClient>({ echo: ECHO_METHOD }, `127.0.0.1:${port}`),
  );
  const result = await echoRun(lanes);
  lanes.forEach((lane) => lane.close());
  await child.kill();
  return result;
}

type EchoClient = { echo: (r: Uint8Array, cb: (e: grpc.ServiceError | null) => void) => void };

/** CONCURRENCY callers over `lanes` for SECONDS after a warm-up: round trips/s and latency. */
async function echoRun(lanes: EchoClient[]) {
  const call = (lane: number) =>
    new Promise<void>((resolve, reject) =>
      lanes[lane % lanes.length]!.echo(PAYLOAD, (e) => e ? reject(e) : resolve())
    );
  for (let i = 0; i < 200; i++) await call(i); // warm up
  const latencies: number[] = [];
  const deadline = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, worker) => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      await call(worker);
      latencies.push(performance.now() - t0);
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    roundTripsPerSecond: Math.round(latencies.length / elapsed),
    p50Ms: round(percentile(latencies, 50), 2),
    p99Ms: round(percentile(latencies, 99), 2),
  };
}

/** The same message shape as Guardyn's sustained run with nothing but grpc-js (relay_floor.ts). */
async function measureFloor() {
  const child = spawn(["run", "-A", SELF, "--role=relay-server"], {});
  try {
    const port = Number((await child.line(/relay listening (\d+)/))[1]);
    const measure = async (sendMode: "unary" | "stream") => {
      const [serverCpu, ownCpu] = [await child.cpuSeconds(), await ownCpuSeconds()];
      const floor = await measureRelayFloor(`127.0.0.1:${port}`, {
        seconds: SECONDS,
        concurrency: CONCURRENCY,
        receivers: 50,
        payload: PAYLOAD,
        sendMode,
      });
      const perMessage = (cpu: number) => Math.round((cpu * 1e6) / floor.messages);
      return {
        ...floor,
        serverCpuUsPerMessage: perMessage((await child.cpuSeconds()) - serverCpu),
        loadGeneratorCpuUsPerMessage: perMessage((await ownCpuSeconds()) - ownCpu),
      };
    };
    return { unarySend: await measure("unary"), streamedSends: await measure("stream") };
  } finally {
    await child.kill();
  }
}

// ---------------------------------------------------------------------------------------------
// Child processes.

// ---------------------------------------------------------------------------------------------
// A Guardyn deployment under test: one messaging instance, its store, devices with tokens.

interface LoadDevice {
  accountId: string;
  deviceId: string;
  registrationId: number;
  token: string;
}

interface Deployment {
  /** Native gRPC (grpc-js in the instance). */
  address: string;
  /** gRPC-Web/Connect: the SDK's path. */
  httpAddress: string;
  child: Child;
  store: Store;
  issuer: TokenIssuer;
  cleanup(): Promise<void>;
}

async function deploy(
  backend: "embedded" | "cluster",
  options: { inspect?: boolean } = {},
) {
  // `--dir=/dev/shm` puts the SQLite file on tmpfs, to see what the disk's syncs cost.
  const dir = await Deno.makeTempDir({ prefix: "guardyn-load-", dir: args.dir });
  const keysFile = join(dir, "token-keys.json");
  await Deno.writeTextFile(keysFile, JSON.stringify(await generateTokenKeyFile()));
  const id = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
  const backendEnv: Record<string, string> = backend === "embedded"
    ? { STORE_BACKEND: "sqlite", SQLITE_PATH: join(dir, "guardyn.db") }
    : {
      STORE_BACKEND: "cql",
      CQL_CONTACT_POINTS: Deno.env.get("CQL_CONTACT_POINTS") ?? "127.0.0.1:9042",
      CQL_KEYSPACE: `guardyn_load_${id}`,
      CQL_REPLICATION: "SimpleStrategy:1",
      BUS_BACKEND: "nats",
      NATS_URL: Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222",
      NATS_STREAM: `GUARDYN_LOAD_${id}`,
      NATS_SUBJECT_PREFIX: `guardyn.load${id}.events`,
    };
  const env: Record<string, string> = {
    DOMAIN,
    LOG_LEVEL: "warn",
    GRPC_PORT: "0",
    // Both paths in one instance: the SDK's (HTTP_PORT) and grpc-js in-process (GRPC_PORT).
    GRPC_LISTENER: "in-process",
    HTTP_PORT: "0",
    METRICS_PORT: "0",
    TOKEN_KEYS_FILE: keysFile,
    GRPC_MAX_CONCURRENT_STREAMS: "100000",
    MESSAGING_SEND_BURST: "1000000",
    MESSAGING_SEND_PER_SECOND: "1000000",
    MESSAGING_STREAM_OPENS_PER_MINUTE: "100000",
    MESSAGING_MAX_STREAMS: "100000",
    ...backendEnv,
  };
  await migrate(readMigrateSettings(env), () => {});
  const inspect = PROFILE || options.inspect ? [`--inspect=127.0.0.1:${INSPECT_PORT}`] : [];
  const child = spawn(["run", "-A", ...inspect, MAIN], env);
  const httpPort = Number((await child.line(/API\s+http:\/\/127\.0\.0\.1:(\d+)/))[1]);
  const port = Number((await child.line(/gRPC\s+127\.0\.0\.1:(\d+)/))[1]);
  const config = parseConfig(env);
  const store = await openStore(config.store, createLogger({ level: "warn" }), { migrate: false });
  const keys = await importTokenKeys(JSON.parse(await Deno.readTextFile(keysFile)));
  const issuer = new TokenIssuer(keys, config.hosts.api, 3600);
  return {
    address: `127.0.0.1:${port}`,
    httpAddress: `127.0.0.1:${httpPort}`,
    child,
    store,
    issuer,
    async cleanup() {
      await child.kill();
      await store.close();
      if (backend === "cluster" && env.NATS_STREAM) {
        await deleteStreams(env.NATS_URL!, [env.NATS_STREAM]).catch(() => {});
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  } satisfies Deployment;
}

/** Accounts with `perAccount` devices each, written to the store; addressable when `keys`. */
async function devices(
  d: Deployment,
  accounts: number,
  perAccount: number,
  keys: boolean,
): Promise<LoadDevice[]> {
  const out: LoadDevice[] = [];
  const now = Date.now();
  const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
  const work = Array.from({ length: accounts }, async () => {
    const accountId = crypto.randomUUID();
    await d.store.auth.accounts.create({
      id: accountId,
      username: `load_${accountId.replaceAll("-", "").slice(0, 20)}`,
      passwordHash: "$argon2id$v=19$m=19456,t=2,p=1$bG9hZA$bG9hZA",
      createdAtMs: now,
    });
    if (keys) await d.store.auth.accounts.setIdentityKey(accountId, random(33), false, now);
    for (let i = 0; i < perAccount; i++) {
      const deviceId = crypto.randomUUID();
      await d.store.auth.devices.create({
        accountId,
        id: deviceId,
        name: `load ${i}`,
        platform: 7,
        registrationId: 1000 + i,
        createdAtMs: now,
        lastSeenAtMs: now,
      }, 100);
      const ref = { accountId, deviceId };
      if (keys) {
        await d.store.auth.prekeys.setSignedPrekey(ref, {
          keyId: 1,
          publicKey: random(33),
          signature: random(64),
        }, now);
        await d.store.auth.prekeys.setLastResortKem(ref, {
          keyId: 1,
          publicKey: random(1569),
          signature: random(64),
        });
      }
      out.push({
        accountId,
        deviceId,
        registrationId: 1000 + i,
        token: (await d.issuer.issue(ref)).token,
      });
    }
  });
  // Bounded concurrency: the store is shared with the running instance.
  for (let i = 0; i < work.length; i += 50) await Promise.all(work.slice(i, i + 50));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Lean clients: a receiver that acks in batches and reports per-message latency.

type Messaging = InstanceType<typeof MessagingServiceClient>;

/** Lanes over the SDK's transport (gRPC-Web over fetch), each on its own HTTP/2 connection. */
function webLanes(address: string, count: number): Messaging[] {
  return Array.from(
    { length: count },
    () => webClient<Messaging>(MessagingServiceService, address),
  );
}

function messagingLanes(address: string, count: number): Messaging[] {
  return Array.from(
    { length: count },
    (_, i) =>
      new MessagingServiceClient(address, grpc.credentials.createInsecure(), {
        ...OWN_CONNECTION,
        // A distinct option per lane: its own HTTP/2 connection.
        "grpc.lane": i,
      } as grpc.ClientOptions),
  );
}

function metadataFor(token: string): grpc.Metadata {
  const m = new grpc.Metadata();
  m.set("authorization", `Bearer ${token}`);
  return m;
}

class LeanReceiver {
  readonly call: grpc.ClientDuplexStream<ReceiveRequest, ReceiveResponse>;
  drained = false;
  delivered = 0;
  status = "";
  #pending: string[] = [];
  #flushScheduled = false;
  ended = false;

  constructor(m: Messaging, token: string, private readonly onEnvelope: (id: string) => void) {
    this.call = m.receive(metadataFor(token));
    this.call.on("data", (response: ReceiveResponse) => {
      const event = response.event;
      if (event?.$case === "envelope") {
        this.delivered++;
        this.onEnvelope(event.value.clientMessageId);
        this.#pending.push(event.value.id);
        if (!this.#flushScheduled) {
          this.#flushScheduled = true;
          setTimeout(() => this.#flush(), 1);
        }
      } else if (event?.$case === "queueDrained") {
        this.drained = true;
      }
    });
    this.call.on("error", () => {});
    this.call.on("status", (status: grpc.StatusObject) => {
      this.ended = true;
      this.status = `${grpc.status[status.code]}: ${status.details}`;
    });
  }

  #flush(): void {
    this.#flushScheduled = false;
    while (this.#pending.length > 0 && !this.ended) {
      const ids = this.#pending.splice(0, 500);
      this.call.write({ kind: { $case: "ack", value: { envelopeIds: ids } } });
    }
  }

  /** Half-close: the server ends the stream with OK (no stream reset, see Traffic.close). */
  close(): void {
    this.call.end();
  }
}

function sendRequest(
  fromOthers: LoadDevice[],
  to: LoadDevice[],
  clientMessageId: string,
): SendMessageRequest {
  const envelope = (device: LoadDevice) => ({
    deviceId: device.deviceId,
    registrationId: device.registrationId,
    type: EnvelopeType.ENVELOPE_TYPE_RATCHET_MESSAGE,
    content: PAYLOAD,
  });
  return {
    recipientAccountId: to[0]!.accountId,
    clientMessageId,
    envelopes: to.map(envelope),
    syncEnvelopes: fromOthers.map(envelope),
    ephemeral: false,
    silent: false,
    ttlSeconds: 0,
    urgent: false,
  };
}

function sendOnce(
  m: Messaging,
  from: LoadDevice,
  fromOthers: LoadDevice[],
  to: LoadDevice[],
  clientMessageId: string,
): Promise<SendMessageResponse> {
  return new Promise((resolve, reject) =>
    m.sendMessage(
      sendRequest(fromOthers, to, clientMessageId),
      metadataFor(from.token),
      (error, response) => error ? reject(error) : resolve(response),
    )
  );
}

/** A send on the sender's SendStream: resolves when sent, rejects like a failed unary call. */
async function sendStreamed(stream: SendStreamSession, request: SendMessageRequest) {
  const answer = await stream.send(request);
  if (answer.result?.$case === "sent") return;
  const failed = answer.result?.value;
  throw Object.assign(new Error(failed?.message ?? "no result"), {
    code: failed?.code ?? grpc.status.UNKNOWN,
    details: failed?.message,
  });
}

/** Groups devices by account, in creation order. */
function byAccount(list: LoadDevice[]): LoadDevice[][] {
  const groups = new Map<string, LoadDevice[]>();
  for (const device of list) {
    groups.set(device.accountId, [...groups.get(device.accountId) ?? [], device]);
  }
  return [...groups.values()];
}

interface Traffic {
  lanes: Messaging[];
  /** Sending accounts: device 0 sends, the others receive the sync copies. */
  senders: LoadDevice[][];
  recipients: LoadDevice[][];
  /** Envelopes each send produces. */
  fanOut: number;
  streams: LeanReceiver[];
  /** Send time and envelopes still to arrive, by client message id. */
  sentAt: Map<string, { t0: number; left: number }>;
  latencies: number[];
  send(n: number, lane: Messaging, id: string): Promise<unknown>;
  /** The same send on the sender's SendStream instead of a SendMessage call. */
  sendStreamed(n: number, id: string): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * Traffic between `accounts` sending and `accounts` receiving accounts of `perAccount` devices
 * each: every send goes to all devices of the recipient plus sync copies to the sender's other
 * devices, all of which stream.
 */
async function openTraffic(
  d: Deployment,
  lanes: Messaging[],
  accounts: number,
  perAccount: number,
  streamLanes: Messaging[] = lanes,
): Promise<Traffic> {
  const senders = byAccount(await devices(d, accounts, perAccount, true));
  const recipients = byAccount(await devices(d, accounts, perAccount, true));
  const sentAt = new Map<string, { t0: number; left: number }>();
  const latencies: number[] = [];
  const onEnvelope = (id: string) => {
    const sent = sentAt.get(id);
    if (sent === undefined) return;
    latencies.push(performance.now() - sent.t0);
    if (--sent.left === 0) sentAt.delete(id);
  };
  const streaming = [...recipients.flat(), ...senders.flatMap((account) => account.slice(1))];
  const streams = streaming.map((r, i) =>
    new LeanReceiver(streamLanes[i % streamLanes.length]!, r.token, onEnvelope)
  );
  await waitUntil(
    () => streams.every((s) => s.drained),
    () =>
      `receive streams open: ${streams.filter((s) => s.drained).length} of ${streams.length}, ` +
      `${streams.filter((s) => s.ended).length} ended (${streams.find((s) => s.ended)?.status})`,
    30_000,
  );
  const fanOut = 2 * perAccount - 1;
  const streamSenders = senders.map((account, i) =>
    new SendStreamSession(lanes[i % lanes.length]!, account[0]!.token)
  );
  const track = <T>(id: string, sending: Promise<T>) => {
    sentAt.set(id, { t0: performance.now(), left: fanOut });
    return sending.catch((error) => {
      sentAt.delete(id);
      throw error;
    });
  };
  return {
    lanes,
    senders,
    recipients,
    fanOut,
    streams,
    sentAt,
    latencies,
    send(n, lane, id) {
      const from = senders[n % senders.length]!;
      const to = recipients[(n * 7) % recipients.length]!;
      return track(id, sendOnce(lane, from[0]!, from.slice(1), to, id));
    },
    sendStreamed(n, id) {
      const from = senders[n % senders.length]!;
      const to = recipients[(n * 7) % recipients.length]!;
      return track(
        id,
        sendStreamed(streamSenders[n % senders.length]!, sendRequest(from.slice(1), to, id)),
      );
    },
    async close() {
      progress("closing the streams");
      for (const sender of streamSenders) sender.call.end();
      for (const stream of streams) stream.close();
      // Stream resets by the hundred, or a client closing a connection that carried about a
      // thousand calls, abort a Deno 2.9 server inside nghttp2 (denoland/deno#36788; see
      // http2_goaway_repro.ts): streams are half-closed here, and connections stay open until
      // the server is gone.
      await waitUntil(() => streams.every((s) => s.ended), "streams ended", 10_000);
    },
  };
}

/** How sends failed, by status: "DEADLINE_EXCEEDED: ..." → count. */
const failures = new Map<string, number>();
function noteFailure(error: unknown): void {
  const e = error as grpc.ServiceError;
  const key = `${grpc.status[e.code] ?? "?"}: ${String(e.details ?? e).slice(0, 80)}`;
  failures.set(key, (failures.get(key) ?? 0) + 1);
}

/**
 * Waits (bounded) until every accepted send has arrived everywhere; returns how many envelopes
 * never did (then forgotten, so they do not count in a later run).
 */
async function settle(t: Traffic): Promise<number> {
  const deadline = Date.now() + 30_000;
  while (t.sentAt.size > 0 && Date.now() < deadline) await sleep(10);
  let missing = 0;
  for (const { left } of t.sentAt.values()) missing += left;
  t.sentAt.clear();
  return missing;
}

/** Closed loop: CONCURRENCY sends in flight, for SECONDS. */
/** `streamed`: sends on SendStream (one stream per sending device) instead of SendMessage. */
async function sustained(t: Traffic, server: Child, streamed = false) {
  const cpuBefore = await server.cpuSeconds();
  const ownCpuBefore = await ownCpuSeconds();
  t.latencies.length = 0;
  const deliveredBefore = t.streams.reduce((n, s) => n + s.delivered, 0);
  let sent = 0;
  let failed = 0;
  const run = crypto.randomUUID().slice(0, 8);
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, worker) => {
    const lane = t.lanes[worker % t.lanes.length]!;
    while (performance.now() < deadline) {
      const n = sent++;
      try {
        await (streamed ? t.sendStreamed(n, `s${run}-${n}`) : t.send(n, lane, `s${run}-${n}`));
      } catch (error) {
        noteFailure(error);
        failed++;
      }
    }
  }));
  const undelivered = await settle(t);
  const elapsed = (performance.now() - started) / 1000;
  const delivered = t.streams.reduce((n, s) => n + s.delivered, 0) - deliveredBefore;
  const serverCpu = (await server.cpuSeconds()) - cpuBefore;
  const ownCpu = (await ownCpuSeconds()) - ownCpuBefore;
  const sorted = [...t.latencies].sort((a, b) => a - b);
  return {
    envelopesPerSend: t.fanOut,
    sent,
    failed,
    sendsPerSecond: Math.round((sent - failed) / elapsed),
    undelivered,
    delivered,
    deliveredPerSecond: Math.round(delivered / elapsed),
    p50Ms: round(percentile(sorted, 50), 2),
    p99Ms: round(percentile(sorted, 99), 2),
    serverCpuUsPerSend: Math.round((serverCpu * 1e6) / Math.max(1, sent - failed)),
    serverCpuUsPerEnvelope: Math.round((serverCpu * 1e6) / Math.max(1, delivered)),
    // The clients share the machine's two cores with the server: their cost bounds the rate too.
    loadGeneratorCpuUsPerSend: Math.round((ownCpu * 1e6) / Math.max(1, sent - failed)),
  };
}

/** Open loop: `rate` sends per second whatever the answers, for SECONDS. */
async function fixedRate(t: Traffic, rate: number, streamed = false) {
  t.latencies.length = 0;
  const tickMs = 10;
  const perTick = rate * tickMs / 1000;
  const ticks = (SECONDS * 1000) / tickMs;
  const started = performance.now();
  const inFlight: Promise<unknown>[] = [];
  let n = 0;
  let failed = 0;
  // Ids are idempotency keys: a new prefix per run so no send repeats an earlier one.
  const run = crypto.randomUUID().slice(0, 8);
  for (let tick = 0; tick < ticks; tick++) {
    // Catch up with the schedule even when a tick came late.
    const due = Math.floor(((performance.now() - started) / tickMs + 1) * perTick);
    for (; n < due && n < rate * SECONDS; n++) {
      inFlight.push(
        (streamed
          ? t.sendStreamed(n, `f${run}-${n}`)
          : t.send(n, t.lanes[n % t.lanes.length]!, `f${run}-${n}`)).catch((error) => {
            noteFailure(error);
            failed++;
          }),
      );
    }
    const next = started + (tick + 1) * tickMs;
    await sleep(Math.max(0, next - performance.now()));
  }
  await Promise.all(inFlight);
  const undelivered = await settle(t);
  const elapsed = (performance.now() - started) / 1000;
  const sorted = [...t.latencies].sort((a, b) => a - b);
  return {
    targetPerSecond: rate,
    achievedPerSecond: Math.round(sorted.length / t.fanOut / elapsed),
    failed,
    undelivered,
    p50Ms: round(percentile(sorted, 50), 2),
    p99Ms: round(percentile(sorted, 99), 2),
    maxMs: round(sorted[sorted.length - 1] ?? NaN, 2),
  };
}

async function measureBackend(backend: "embedded" | "cluster", transport: "web" | "grpc" = "web") {
  const d = await deploy(backend);
  const lanes = transport === "web" ? webLanes(d.httpAddress, 4) : messagingLanes(d.address, 4);
  // Receive streams on connections of their own, as the SDK does (client/transport.ts: Deno's
  // fetch has no TCP_NODELAY, so acks would hold back sends on a shared connection).
  const streamLanes = transport === "web" ? webLanes(d.httpAddress, 4) : lanes;
  try {
    // One device per account: one envelope per message.
    const single = await openTraffic(d, lanes, 50, 1, streamLanes);
    let singleResults;
    try {
      progress(`${backend}: warm-up`);
      await fixedRate(single, 200); // warm-up: JIT, connections, caches
      // The fixed rate first: the saturating run after it leaves write-back work behind.
      const rate = FIXED_RATE[backend];
      progress(`${backend}: ${rate} messages/s`);
      const fixed = await fixedRate(single, rate);
      progress(JSON.stringify(fixed));
      progress(`${backend}: sustained, one device per account`);
      const profiler = PROFILE ? await startProfiler(INSPECT_PORT) : undefined;
      const sustainedRun = await sustained(single, d.child);
      progress(JSON.stringify(sustainedRun));
      if (profiler) {
        await Deno.writeTextFile(`${PROFILE}.${backend}.cpuprofile`, await profiler.stop());
      }
      progress(`${backend}: ${rate} messages/s on SendStream`);
      const fixedStreamed = await fixedRate(single, rate, true);
      progress(JSON.stringify(fixedStreamed));
      progress(`${backend}: sustained, one device per account, sends on SendStream`);
      const streamedRun = await sustained(single, d.child, true);
      progress(JSON.stringify(streamedRun));
      singleResults = {
        sustained: sustainedRun,
        sustainedSendStream: streamedRun,
        [`fixed${rate}`]: fixed,
        [`fixed${rate}SendStream`]: fixedStreamed,
      };
    } finally {
      await single.close();
    }
    // Two devices per account: each message goes to both devices of the recipient and to the
    // sender's other device (three envelopes), as for a typical multi-device user.
    progress(`${backend}: sustained, two devices per account`);
    const multi = await openTraffic(d, lanes, 25, 2, streamLanes);
    try {
      await fixedRate(multi, 100);
      return {
        ...singleResults,
        multiDevice: await sustained(multi, d.child),
        multiDeviceSendStream: await sustained(multi, d.child, true),
      };
    } finally {
      await multi.close();
    }
  } finally {
    await d.cleanup();
    for (const lane of new Set([...lanes, ...streamLanes])) lane.close();
  }
}

// ---------------------------------------------------------------------------------------------
// 4. Idle streams on one instance.

async function measureIdle() {
  const d = await deploy("embedded", { inspect: true });
  /** Connections close after the server is gone (see Traffic.close). */
  const closeLater: Messaging[] = [];
  try {
    const perAccount = 10;
    const idle = await devices(d, Math.ceil(IDLE_STREAMS / perAccount), perAccount, false);
    const [sender, receiver] = await devices(d, 2, 1, true);
    await sleep(1000);
    const heapBefore = await heapAfterGc(INSPECT_PORT);
    const before = await d.child.rss();
    // The SDK's transport; 100 streams per connection, under hyper's per-connection limit.
    const lanes = webLanes(d.httpAddress, Math.ceil(idle.length / 100));
    const opened: LeanReceiver[] = [];
    const started = performance.now();
    for (let i = 0; i < idle.length; i++) {
      opened.push(new LeanReceiver(lanes[Math.floor(i / 100)]!, idle[i]!.token, () => {}));
      if (i % 500 === 499) {
        await waitUntil(() => opened.every((s) => s.drained || s.ended), "streams open", 60_000);
      }
    }
    await waitUntil(() => opened.every((s) => s.drained || s.ended), "streams open", 60_000);
    const openSeconds = (performance.now() - started) / 1000;
    const failed = opened.filter((s) => s.ended).length;
    await sleep(2000);
    const heapAfter = await heapAfterGc(INSPECT_PORT);
    if (args.heap) await heapSnapshot(INSPECT_PORT, args.heap);
    const after = await d.child.rss();
    // A live message to one more device while all of these stay open.
    const m = webLanes(d.httpAddress, 1)[0]!;
    const latencies: number[] = [];
    const sentAt = new Map<string, number>();
    const live = new LeanReceiver(m, receiver!.token, (id) => {
      latencies.push(performance.now() - sentAt.get(id)!);
    });
    await waitUntil(() => live.drained, "the live stream", 10_000);
    for (let i = 0; i < 200; i++) {
      sentAt.set(`i${i}`, performance.now());
      await sendOnce(m, sender!, [], [receiver!], `i${i}`);
    }
    await waitUntil(() => latencies.length === 200, "live deliveries", 10_000);
    latencies.sort((a, b) => a - b);
    live.close();
    closeLater.push(m);
    for (const stream of opened) stream.close();
    await waitUntil(() => opened.every((s) => s.ended), "idle streams ended", 60_000);
    closeLater.push(...lanes);
    const open = idle.length - failed;
    return {
      streams: open,
      failed,
      openSeconds: round(openSeconds),
      rssBeforeMiB: round(before / 1048576),
      rssAfterMiB: round(after / 1048576),
      rssBytesPerStream: Math.round((after - before) / Math.max(1, open)),
      jsHeapBytesPerStream: Math.round((heapAfter - heapBefore) / Math.max(1, open)),
      liveP50Ms: round(percentile(latencies, 50), 2),
      liveP99Ms: round(percentile(latencies, 99), 2),
    };
  } finally {
    await d.cleanup();
    for (const client of closeLater) client.close();
  }
}

/** A DevTools protocol session with a process listening with --inspect on `port`. */
async function inspector(port: number) {
  const [target] = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const socket = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  let next = 1;
  const pending = new Map<number, (result: unknown) => void>();
  // deno-lint-ignore no-explicit-any
  let listener: ((message: any) => void) | undefined;
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.id === undefined) listener?.(message);
    else pending.get(message.id)?.(message.result);
  };
  const send = (method: string, params: Record<string, unknown> = {}): Promise<unknown> =>
    new Promise((resolve) => {
      const id = next++;
      pending.set(id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  return {
    send,
    /** Sends a command and hands every event to `onEvent` until its answer arrives. */
    async sendCollecting(
      method: string,
      params: Record<string, unknown>,
      // deno-lint-ignore no-explicit-any
      onEvent: (message: any) => void,
    ): Promise<unknown> {
      listener = onEvent;
      try {
        return await send(method, params);
      } finally {
        listener = undefined;
      }
    },
    close: () => socket.close(),
  };
}

/** Starts the V8 CPU profiler of a process listening with --inspect on `port`. */
async function startProfiler(port: number): Promise<{ stop(): Promise<string> }> {
  const session = await inspector(port);
  await session.send("Profiler.enable");
  await session.send("Profiler.setSamplingInterval", { interval: 200 });
  await session.send("Profiler.start");
  return {
    async stop() {
      const result = await session.send("Profiler.stop") as { profile: unknown };
      session.close();
      return JSON.stringify(result.profile);
    },
  };
}

/** Writes a V8 heap snapshot of the process (for `--heap=FILE`, to see what a stream holds). */
async function heapSnapshot(port: number, file: string): Promise<void> {
  const session = await inspector(port);
  const chunks: string[] = [];
  await session.send("HeapProfiler.enable");
  await session.sendCollecting("HeapProfiler.takeHeapSnapshot", {}, (message) => {
    if (message.method === "HeapProfiler.addHeapSnapshotChunk") chunks.push(message.params.chunk);
  });
  session.close();
  await Deno.writeTextFile(file, chunks.join(""));
}

/** The JS heap in use after a full garbage collection, in bytes. */
async function heapAfterGc(port: number): Promise<number> {
  const session = await inspector(port);
  try {
    await session.send("HeapProfiler.enable");
    await session.send("HeapProfiler.collectGarbage");
    const usage = await session.send("Runtime.getHeapUsage") as { usedSize: number };
    return usage.usedSize;
  } finally {
    session.close();
  }
}

// ---------------------------------------------------------------------------------------------

if (import.meta.main) {
  if (args.role === "web-echo-server") {
    webEchoServer();
  } else if (args.role === "echo-server") {
    await echoServer();
  } else if (args.role === "relay-server") {
    await relayServer();
  } else {
    const results: Record<string, unknown> = {
      machine: { cpus: navigator.hardwareConcurrency, deno: Deno.version.deno },
      seconds: SECONDS,
      concurrency: CONCURRENCY,
    };
    if (ONLY.has("echo")) results.echo = await measureEcho();
    if (ONLY.has("web-echo")) results.webEcho = await measureWebEcho();
    if (ONLY.has("floor")) results.transportFloor = await measureFloor();
    if (ONLY.has("embedded")) results.embedded = await measureBackend("embedded");
    if (ONLY.has("embedded-grpc")) {
      results.embeddedGrpcJs = await measureBackend("embedded", "grpc");
    }
    if (ONLY.has("cluster")) results.cluster = await measureBackend("cluster");
    if (ONLY.has("idle")) results.idle = await measureIdle();
    if (failures.size > 0) results.failures = Object.fromEntries(failures);
    console.log(JSON.stringify(results, null, 2));
    if (args.write) {
      await writeLoadReport(args.write, results as unknown as LoadRun);
      progress(`figures written into ${args.write}`);
    }
    Deno.exit(0);
  }
}
