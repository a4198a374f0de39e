// deno-lint-ignore-file no-console -- a command-line program: the terminal is its output
/**
 * Group load, loopback only, bounded in count and time (issue 13, point 11):
 *  1. client side: an add-member commit in a 250- and in a 1,000-device group (time, commit,
 *     welcome and GroupInfo sizes);
 *  2. one application message to a 1,000-device group: SendGroupMessage accepted and written
 *     to every other mailbox (p50/p99), and delivered to 100 connected devices (p50/p99);
 *  3. group messages per second on that group, and across 100 groups of 10 devices;
 *  4. commits per second on one group (sequential update commits by one member).
 *
 * The server (all services, `deno run -A services/main.ts`) runs as a child process on the
 * embedded store or on Cassandra + JetStream. Accounts, devices and key packages are written
 * straight into its store and tokens minted with its keys: registration is not measured here.
 *
 *   deno run -A tests/load/group_load.ts [--backend=embedded|cluster] [--members=1000]
 *     [--messages=20] [--seconds=5]
 */

import { join } from "node:path";
import { generateKeyPackage, type KeyPackageBundle, MlsGroup } from "../../crypto/mls.ts";
import { sha256, toHex } from "../../crypto/primitives.ts";
import { openStore } from "../../services/runtime/open_store.ts";
import { parseConfig } from "../../services/runtime/config.ts";
import { createLogger } from "../../services/platform/log.ts";
import {
  generateTokenKeyFile,
  importTokenKeys,
  TokenIssuer,
} from "../../services/platform/tokens.ts";
import "../../services/store/group_ports.ts";
import { migrate, readMigrateSettings } from "../../tasks/migrate.ts";
import { deleteStreams } from "../../services/bus/conformance/nats_server.ts";
import { GroupServiceClient, GroupServiceService } from "../../proto/gen/guardyn/v1/messaging.ts";
import { unary } from "../support/grpc.ts";
import { webClient } from "../support/web.ts";
import { messagingClient, ReceiveSession } from "../support/receive_session.ts";
import { spawn } from "./child_process.ts";

const args = Object.fromEntries(
  Deno.args.filter((a) => a.startsWith("--")).map((a) => {
    const [key, value] = a.slice(2).split("=");
    return [key!, value ?? "true"];
  }),
);
const bounded = (value: number, min: number, max: number) =>
  Math.min(max, Math.max(min, Number.isFinite(value) ? value : min));
const BACKEND = args.backend === "cluster" ? "cluster" : "embedded";
const MEMBERS = bounded(Number(args.members ?? 1000), 10, 1000);
const MESSAGES = bounded(Number(args.messages ?? 20), 1, 200);
const SECONDS = bounded(Number(args.seconds ?? 5), 1, 60);
const CONNECTED = Math.min(100, MEMBERS - 1);
const SUITE = 1;
const MAIN = new URL("../../services/main.ts", import.meta.url).pathname;

type Groups = InstanceType<typeof GroupServiceClient>;
interface Member {
  accountId: string;
  deviceId: string;
  token: string;
  bundle: KeyPackageBundle;
}

const started = performance.now();
const progress = (what: string) =>
  console.error(`[${((performance.now() - started) / 1000).toFixed(1)} s] ${what}`);
const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
const ms = (n: number) => Number(n.toFixed(1));
const identityOf = (m: { accountId: string; deviceId: string }) => `${m.accountId}:${m.deviceId}`;

async function deploy() {
  const dir = await Deno.makeTempDir({ prefix: "guardyn-group-load-" });
  const keysFile = join(dir, "token-keys.json");
  await Deno.writeTextFile(keysFile, JSON.stringify(await generateTokenKeyFile()));
  const id = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
  const env: Record<string, string> = {
    DOMAIN: "guardyn.load",
    LOG_LEVEL: "warn",
    GRPC_LISTENER: "off",
    GRPC_PORT: "0",
    HTTP_PORT: "0",
    METRICS_PORT: "0",
    TOKEN_KEYS_FILE: keysFile,
    MESSAGING_STREAM_OPENS_PER_MINUTE: "100000",
    GROUPS_SEND_BURST: "1000000",
    GROUPS_SEND_PER_SECOND: "1000000",
    GROUPS_COMMIT_BURST: "1000000",
    GROUPS_COMMITS_PER_MINUTE: "1000000",
    GROUPS_GROUP_COMMITS_PER_MINUTE: "1000000",
    GROUPS_GROUP_MESSAGES_PER_SECOND: "1000000",
    GROUPS_CREATES_PER_HOUR: "1000000",
    ...(BACKEND === "embedded" ? { STORE_BACKEND: "sqlite", SQLITE_PATH: join(dir, "g.db") } : {
      STORE_BACKEND: "cql",
      CQL_CONTACT_POINTS: Deno.env.get("CQL_CONTACT_POINTS") ?? "127.0.0.1:9042",
      CQL_KEYSPACE: `guardyn_gload_${id}`,
      CQL_REPLICATION: "SimpleStrategy:1",
      BUS_BACKEND: "nats",
      NATS_URL: Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222",
      NATS_STREAM: `GUARDYN_GLOAD_${id}`,
      NATS_SUBJECT_PREFIX: `guardyn.gload${id}.events`,
    }),
  };
  await migrate(readMigrateSettings(env), () => {});
  const child = spawn(["run", "-A", MAIN], env);
  const port = Number((await child.line(/API\s+http:\/\/127\.0\.0\.1:(\d+)/))[1]);
  const config = parseConfig(env);
  const store = await openStore(config.store, createLogger({ level: "warn" }), { migrate: false });
  const keys = await importTokenKeys(JSON.parse(await Deno.readTextFile(keysFile)));
  return {
    address: `127.0.0.1:${port}`,
    child,
    store,
    issuer: new TokenIssuer(keys, config.hosts.api, 3600),
    async cleanup() {
      await child.kill();
      await store.close();
      if (env.NATS_STREAM) await deleteStreams(env.NATS_URL!, [env.NATS_STREAM]).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

type Deployment = Awaited<ReturnType<typeof deploy>>;

/** Devices (one per account) with a published, claimed key package each. */
async function members(d: Deployment, count: number): Promise<Member[]> {
  const out: Member[] = [];
  const now = Date.now();
  for (let i = 0; i < count; i++) {
    const accountId = crypto.randomUUID();
    const deviceId = crypto.randomUUID();
    await d.store.auth.accounts.create({
      id: accountId,
      username: `g_${accountId.replaceAll("-", "").slice(0, 20)}`,
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
    const bundle = await generateKeyPackage(`${accountId}:${deviceId}`);
    const ref = toHex(sha256(bundle.keyPackage));
    const device = { accountId, deviceId };
    await d.store.groups.recordClaim(device, ref, now, now + 3600_000);
    out.push({ ...device, token: (await d.issuer.issue(device)).token, bundle });
  }
  return out;
}

/** Creates a group of `list` (the first commits) through the server, adds in commits of 100. */
async function buildGroup(g: Groups, list: Member[]) {
  const [owner, ...rest] = list;
  const group = await MlsGroup.create({ deviceAddress: identityOf(owner!) });
  await unary(g.createGroup.bind(g), {
    groupId: group.groupId,
    cipherSuite: SUITE,
    groupInfo: await group.groupInfo(),
  }, owner!.token);
  for (let i = 0; i < rest.length; i += 100) {
    const batch = rest.slice(i, i + 100);
    const pending = await group.add(batch.map((m) => m.bundle.keyPackage));
    await commit(g, owner!, group, pending, batch);
  }
  return group;
}

async function commit(
  g: Groups,
  by: Member,
  group: MlsGroup,
  pending: { epoch: bigint; commit: Uint8Array; welcome?: Uint8Array; groupInfo: Uint8Array },
  added: Member[] = [],
) {
  await unary(g.sendCommit.bind(g), {
    groupId: group.groupId,
    epoch: Number(pending.epoch),
    commit: pending.commit,
    welcome: pending.welcome ?? new Uint8Array(),
    addedDevices: added.map((m) => ({ accountId: m.accountId, deviceId: m.deviceId })),
    removedDevices: [],
    groupInfo: pending.groupInfo,
    clientMessageId: `c-${crypto.randomUUID()}`,
  }, by.token);
  group.mergePendingCommit();
}

async function say(g: Groups, by: Member, group: MlsGroup, text: string) {
  await (await prepareSay(g, by, group, text))();
}

/** Encrypts now (MLS state changes must not interleave); the returned call sends it. */
async function prepareSay(g: Groups, by: Member, group: MlsGroup, text: string) {
  const request = {
    groupId: group.groupId,
    epoch: Number(group.epoch),
    privateMessage: await group.encrypt(new TextEncoder().encode(text)),
    clientMessageId: `m-${crypto.randomUUID()}`,
    ephemeral: false,
    silent: false,
  };
  return async () => {
    await unary(g.sendGroupMessage.bind(g), request, by.token);
  };
}

async function clientSide() {
  progress("client side: add-member commits in 250- and 1,000-device groups");
  const result: Record<string, unknown> = {};
  for (const size of [250, 1000]) {
    const admin = await MlsGroup.create({ deviceAddress: "admin:1" });
    for (let i = 1; i < size; i += 100) {
      const batch = [];
      for (let j = i; j < Math.min(size, i + 100); j++) {
        batch.push((await generateKeyPackage(`m${j}:1`)).keyPackage);
      }
      await admin.add(batch);
      admin.mergePendingCommit();
    }
    const joiner = await generateKeyPackage("joiner:1");
    const times: number[] = [];
    let sizes = { commit: 0, welcome: 0, groupInfo: 0 };
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const pending = await admin.add([joiner.keyPackage]);
      times.push(performance.now() - t0);
      sizes = {
        commit: pending.commit.byteLength,
        welcome: pending.welcome!.byteLength,
        groupInfo: pending.groupInfo.byteLength,
      };
      admin.discardPendingCommit();
    }
    result[`add_commit_${size}`] = {
      p50_ms: ms(percentile(times, 50)),
      max_ms: ms(Math.max(...times)),
      bytes: sizes,
    };
  }
  return result;
}

async function serverSide(d: Deployment) {
  const g = webClient<Groups>(GroupServiceService, d.address);
  progress(`making ${MEMBERS} devices with key packages`);
  const list = await members(d, MEMBERS);
  progress("building the group through SendCommit (adds of 100)");
  const t0 = performance.now();
  const group = await buildGroup(g, list);
  const buildMs = performance.now() - t0;
  const owner = list[0]!;
  progress(`opening ${CONNECTED} receive streams`);
  const m = messagingClient(d.address);
  const streams = list.slice(1, CONNECTED + 1).map((x) => new ReceiveSession(m, x.token));
  for (const s of streams) {
    await s.waitFor(() => s.drainedCount() !== undefined, "drained", 60_000);
    s.ackAll();
  }
  progress(`${MESSAGES} messages to the ${MEMBERS}-device group, one at a time`);
  const accepted: number[] = [];
  const delivered: number[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const before = streams.map((s) => s.mail().length);
    const t = performance.now();
    await say(g, owner, group, `load ${i}`);
    accepted.push(performance.now() - t);
    const arrived = new Array(streams.length).fill(false);
    await new Promise<void>((resolve) => {
      const check = () => {
        const now = performance.now();
        streams.forEach((s, k) => {
          if (!arrived[k] && s.mail().length > before[k]!) {
            arrived[k] = true;
            delivered.push(now - t);
          }
        });
        if (arrived.every(Boolean)) resolve();
        else setTimeout(check, 1);
      };
      check();
    });
    for (const s of streams) s.ackAll();
  }
  progress(`messages per second on one ${MEMBERS}-device group (${SECONDS} s, 4 in flight)`);
  const oneGroup = await rate(SECONDS, 4, () => prepareSay(g, owner, group, "rate"));
  progress("commits per second on one group (sequential updates)");
  const commits = await rate(SECONDS, 1, async () => {
    const pending = await group.update();
    return () => commit(g, owner, group, pending);
  });
  for (const s of streams) await s.close();
  progress("messages per second across 100 groups of 10 devices");
  const small: { owner: Member; group: MlsGroup }[] = [];
  for (let i = 0; i < 100; i++) {
    const ten = await members(d, 10);
    small.push({ owner: ten[0]!, group: await buildGroup(g, ten) });
  }
  let next = 0;
  const across = await rate(SECONDS, 16, () => {
    const pick = small[next++ % small.length]!;
    return prepareSay(g, pick.owner, pick.group, "across");
  });
  g.close();
  m.close();
  return {
    build_ms: ms(buildMs),
    message_accepted_ms: { p50: ms(percentile(accepted, 50)), p99: ms(percentile(accepted, 99)) },
    message_delivered_ms: {
      p50: ms(percentile(delivered, 50)),
      p99: ms(percentile(delivered, 99)),
      devices: CONNECTED,
    },
    one_group_messages_per_s: oneGroup,
    commits_per_s: commits,
    across_100_groups_messages_per_s: across,
  };
}

/**
 * Runs `lanes` loops for `seconds`: each prepares a call (one at a time: MLS state changes
 * must not interleave) and sends it (concurrently). Completed calls per second.
 */
async function rate(
  seconds: number,
  lanes: number,
  prepare: () => Promise<() => Promise<void>>,
): Promise<number> {
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let done = 0;
  let chain: Promise<unknown> = Promise.resolve();
  await Promise.all(Array.from({ length: lanes }, async () => {
    while (performance.now() < end) {
      const prepared = chain.then(prepare);
      chain = prepared.catch(() => {});
      await (await prepared)();
      done++;
    }
  }));
  return Number((done / ((performance.now() - t0) / 1000)).toFixed(1));
}

if (import.meta.main) {
  const client = await clientSide();
  const d = await deploy();
  try {
    const server = await serverSide(d);
    console.log(JSON.stringify({ backend: BACKEND, members: MEMBERS, client, server }, null, 2));
  } finally {
    await d.cleanup();
  }
}
