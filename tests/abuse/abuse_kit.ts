/**
 * The abuse suite's world: a Guardyn instance in its own process (`services/main.ts`, as
 * `deno task dev` runs it, with the native gRPC gateway workers), a legitimate SDK conversation
 * that runs while an attack does, and the checks every case makes afterwards: the process is
 * alive, health answers, at least 99 % of the legitimate operations succeeded, and every message
 * that was sent arrived. Loopback only; every attack is bounded in time.
 */

import { join } from "node:path";
import { GuardynClient } from "../../client/mod.ts";
import { freePort } from "../support/net.ts";
import { type SpawnedPlatform, spawnPlatform } from "../support/platform.ts";
import { sleep, waitUntil } from "../support/wait.ts";
import { assert, assertEquals } from "../assert.ts";
import { PASSPHRASE, PASSWORD, TEST_KDF, TEST_KEYS } from "../e2e/e2e_test_kit.ts";
import { FrameType, grpcData, headers, RawH2, requestHeaders } from "./h2_frames.ts";

/**
 * What Deno's HTTP server prints for each connection an attack breaks (from hyper/h2; the
 * runtime offers no switch for it). Dropped here so the test output stays readable.
 */
const HYPER_NOISE = /^(recv_reset|remotely-reset|connection error|stream error|frame with invalid)/;

export interface Target {
  server: SpawnedPlatform;
  httpPort: number;
  grpcPort: number;
  metricsPort: number;
  dir: string;
  stop(): Promise<void>;
}

export async function startTarget(env: Record<string, string> = {}): Promise<Target> {
  const dir = await Deno.makeTempDir({ prefix: "guardyn-abuse-" });
  const metricsPort = freePort();
  const server = await spawnPlatform(
    "services/main.ts",
    {
      SQLITE_PATH: join(dir, "guardyn.db"),
      GRPC_LISTENER: "workers",
      GRPC_WORKERS: "2",
      METRICS_PORT: String(metricsPort),
      LOG_LEVEL: "error",
      REGISTRATION_BURST: "10000",
      REGISTRATIONS_PER_MINUTE: "10000",
      PREKEY_FETCH_BURST: "1000",
      PREKEY_FETCH_PER_MINUTE: "10000",
      MESSAGING_SEND_BURST: "10000",
      MESSAGING_SEND_PER_SECOND: "10000",
      MESSAGING_STREAM_OPENS_PER_MINUTE: "10000",
      ...env,
    },
    undefined,
    HYPER_NOISE,
  );
  // The gateway workers listen a moment after the HTTP listener.
  const grpcPort = Number(server.grpcAddress.split(":").pop());
  await waitUntil(() => nativeAnswers(grpcPort), "native gRPC workers listening", 30_000);
  return {
    server,
    httpPort: Number(server.address.split(":").pop()),
    grpcPort,
    metricsPort,
    dir,
    stop: async () => {
      await server.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Health over Connect unary on the HTTP listener: true when it says SERVING. */
export async function webHealthy(httpPort: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${httpPort}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: new Uint8Array(0),
      signal: AbortSignal.timeout(2_000),
    });
    const body = new Uint8Array(await response.arrayBuffer());
    // HealthCheckResponse{status: SERVING} is the two bytes 08 01.
    return response.status === 200 && body[0] === 0x08 && body[1] === 0x01;
  } catch {
    return false;
  }
}

/** One native gRPC health call on a fresh connection: true when response headers arrive. */
export async function nativeAnswers(grpcPort: number, timeoutMs = 1_000): Promise<boolean> {
  let raw: RawH2 | undefined;
  try {
    raw = await RawH2.open(grpcPort);
    const answered = raw.waitFor(FrameType.HEADERS, 1, timeoutMs);
    await raw.write(
      headers(1, requestHeaders("/grpc.health.v1.Health/Check", "application/grpc")),
      grpcData(1),
    );
    await answered;
    return true;
  } catch {
    return false;
  } finally {
    raw?.close();
  }
}

/** Worker restarts so far, from the instance's /metrics. */
export async function workerRestarts(target: Target): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${target.metricsPort}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("guardyn_grpc_worker_restarts_total"));
  return line ? Number(line.split(" ").pop()) : 0;
}

export interface Conversation {
  alice: GuardynClient;
  bob: GuardynClient;
  bobName: string;
  aliceName: string;
  close(): Promise<void>;
}

/**
 * Two SDK users on the HTTP listener (the path real clients use), both connected; `port` puts
 * a proxy in between.
 */
export async function conversation(target: Target, port = target.httpPort): Promise<Conversation> {
  const open = async (name: string) => {
    const client = await GuardynClient.open({
      server: `127.0.0.1:${port}`,
      profilePath: join(target.dir, `${name}.profile`),
      passphrase: PASSPHRASE,
      deviceName: name,
      kdf: TEST_KDF,
      keyPolicy: TEST_KEYS,
      backoff: { baseMs: 50, capMs: 1_000 },
    });
    const username = `${name}_${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`;
    await client.register(username, PASSWORD);
    client.connect();
    await waitUntil(() => client.online, `${name} online`);
    return { client, username };
  };
  const alice = await open(`alice${Math.floor(Math.random() * 1e6)}`);
  const bob = await open(`bob${Math.floor(Math.random() * 1e6)}`);
  return {
    alice: alice.client,
    bob: bob.client,
    aliceName: alice.username,
    bobName: bob.username,
    close: async () => {
      await Promise.allSettled([alice.client.close(), bob.client.close()]);
    },
  };
}

export interface AttackReport {
  attempted: number;
  succeeded: number;
  /** Messages whose send succeeded but that never reached the recipient. */
  lost: number;
  alive: boolean;
  healthy: boolean;
}

/**
 * Runs `attack` while alice keeps sending bob messages (one every `intervalMs`), then checks
 * the instance and waits for every successfully sent message to arrive.
 */
export async function underAttack(
  target: Target,
  talk: Conversation,
  attack: () => Promise<void>,
  intervalMs = 25,
): Promise<AttackReport> {
  let attacking = true;
  const sent: string[] = [];
  let attempted = 0;
  const legit = (async () => {
    while (attacking || attempted < 20) {
      const body = `legit ${crypto.randomUUID()}`;
      attempted++;
      try {
        await talk.alice.sendText(talk.bobName, body);
        sent.push(body);
      } catch {
        // Counted as a failed operation.
      }
      await sleep(intervalMs);
    }
  })();
  try {
    await attack();
  } finally {
    attacking = false;
  }
  await legit;
  const alive = target.server.running;
  const healthy = alive && await webHealthy(target.httpPort);
  const received = () => new Set(talk.bob.messages(talk.aliceName).map((m) => m.body));
  await waitUntil(() => sent.every((body) => received().has(body)), "every sent message", 20_000)
    .catch(() => {});
  const got = received();
  return {
    attempted,
    succeeded: sent.length,
    lost: sent.filter((body) => !got.has(body)).length,
    alive,
    healthy,
  };
}

/**
 * The checks every case makes: the process is alive, health answers, at least 99 % of the
 * legitimate sends succeeded and none was lost. `name` says which attack (and path).
 */
export function assertSurvived(name: string, report: AttackReport): void {
  const rate = report.succeeded / report.attempted;
  console.log(
    `abuse ${name}: ${report.succeeded}/${report.attempted} legitimate sends succeeded ` +
      `(${(rate * 100).toFixed(1)} %), ${report.lost} lost, process ${
        report.alive ? "alive" : "DEAD"
      }, health ${report.healthy ? "SERVING" : "NOT ANSWERING"}`,
  );
  assert(report.alive, `${name}: the serving process died`);
  assert(report.healthy, `${name}: health does not answer after the attack`);
  assert(rate >= 0.99, `${name}: only ${(rate * 100).toFixed(1)} % of legitimate sends succeeded`);
  assertEquals(report.lost, 0, `${name}: messages were lost`);
}

/** Repeats `round` until `ms` passed. */
export async function forMs(ms: number, round: () => Promise<unknown>): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) await round();
}

/** Runs an external tool bounded in time; its output is returned, never thrown. */
export async function run(command: string, args: string[], timeoutMs = 30_000): Promise<string> {
  const child = new Deno.Command(command, {
    args,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).spawn();
  const output = await child.output();
  return new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
}

/** A file holding one empty gRPC message (the 5-byte frame): h2load's request body. */
export async function emptyGrpcBody(dir: string): Promise<string> {
  const path = join(dir, "empty.grpc");
  await Deno.writeFile(path, new Uint8Array(5));
  return path;
}
