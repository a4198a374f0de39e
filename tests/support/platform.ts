/**
 * Runs Guardyn services in-process for tests, on the embedded store or on the cluster backends
 * (a fresh migrated CQL keyspace on CQL_CONTACT_POINTS and JetStream on NATS_URL). A cluster
 * run FAILS when those servers are absent: `deno task test` starts them.
 */

import { join } from "node:path";
import { servicesNamed } from "../../services/runtime/catalog.ts";
import { type RunningPlatform, runServices } from "../../services/runtime/runtime.ts";
import { memoryLogger } from "../../services/platform/log.ts";
import { generateTokenKeyFile } from "../../services/platform/tokens.ts";
import { migrate } from "../../tasks/migrate.ts";
import { freePort, waitForPort } from "./net.ts";

export type Backend = "embedded" | "cluster";

export interface TestPlatform {
  /** The gRPC-Web/Connect listener: what the SDK and the test kits talk to. */
  address: string;
  /** Native gRPC (only when the test set GRPC_LISTENER). */
  grpcAddress: string;
  platform: RunningPlatform;
  log: ReturnType<typeof memoryLogger>;
  /** Environment the platform was started with (to start a second instance on the same data). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export async function clusterEnv(dir: string): Promise<Record<string, string>> {
  const keyspace = `guardyn_t_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const contactPoints = Deno.env.get("CQL_CONTACT_POINTS") ?? "127.0.0.1:9042";
  const natsUrl = Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222";
  const keysFile = join(dir, "token-keys.json");
  await Deno.writeTextFile(keysFile, JSON.stringify(await generateTokenKeyFile()));
  const env = {
    STORE_BACKEND: "cql",
    CQL_CONTACT_POINTS: contactPoints,
    CQL_KEYSPACE: keyspace,
    CQL_REPLICATION: "SimpleStrategy:1",
    BUS_BACKEND: "nats",
    NATS_URL: natsUrl,
    TOKEN_KEYS_FILE: keysFile,
  };
  try {
    const { readMigrateSettings } = await import("../../tasks/migrate.ts");
    await migrate(readMigrateSettings(env), () => {});
  } catch (error) {
    throw new Error(
      `cluster tests need Cassandra/ScyllaDB at ${contactPoints} and NATS at ${natsUrl} ` +
        `(deno task test starts them): ${(error as Error).message}`,
    );
  }
  return env;
}

/** Starts the catalog's services of these names ("auth", "messaging"...) in this process. */
export async function startPlatform(
  services: readonly string[],
  options: { backend?: Backend; env?: Record<string, string>; shared?: TestPlatform } = {},
): Promise<TestPlatform> {
  const dir = await Deno.makeTempDir({ prefix: "guardyn-test-" });
  const base = options.shared?.env ??
    (options.backend === "cluster"
      ? await clusterEnv(dir)
      : { SQLITE_PATH: join(dir, "guardyn.db") });
  const env = {
    DOMAIN: "guardyn.test",
    GRPC_PORT: "0",
    // The suites talk gRPC-Web to HTTP_PORT, like the SDK: no nghttp2 in the test process.
    GRPC_LISTENER: "off",
    HTTP_PORT: "0",
    METRICS_PORT: "0",
    SHUTDOWN_GRACE_MS: "500",
    ...base,
    ...options.env,
  };
  const log = memoryLogger("info");
  const platform = await runServices(servicesNamed(services), { env, log });
  return {
    address: `127.0.0.1:${platform.httpPort}`,
    grpcAddress: `127.0.0.1:${platform.grpcPort}`,
    platform,
    log,
    env,
    stop: async () => {
      await platform.stop();
      if (!options.shared) await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

export interface SpawnedPlatform {
  /** The gRPC-Web/Connect listener (HTTP_PORT). */
  address: string;
  /** Native gRPC (GRPC_PORT), when the env turned GRPC_LISTENER on. */
  grpcAddress: string;
  env: Record<string, string>;
  pid: number;
  /** False once the process exited (a crash, an abort). */
  readonly running: boolean;
  /** How the process ended. */
  status: Promise<Deno.CommandStatus>;
  /** CPU seconds (user + system) the server process used so far (Linux /proc). */
  cpuSeconds(): Promise<number>;
  /** SIGTERM (graceful) or SIGKILL (crash). */
  stop(signal?: Deno.Signal): Promise<void>;
}

/**
 * Runs a service entry point (e.g. services/auth/main.ts) as its own process, as in a
 * deployment: load generators then measure the server, not their own event loop.
 */
export async function spawnPlatform(
  entry: string,
  env: Record<string, string>,
  denoFlags: string[] = (Deno.env.get("GUARDYN_SERVER_DENO_FLAGS") ?? "").split(" ").filter(
    Boolean,
  ),
  /** stderr lines matching this are dropped (noise a test provokes on purpose). */
  dropStderr?: RegExp,
): Promise<SpawnedPlatform> {
  const port = freePort();
  const fullEnv = {
    DOMAIN: "guardyn.test",
    HTTP_PORT: String(port),
    GRPC_PORT: String(freePort()),
    GRPC_LISTENER: "off",
    METRICS_PORT: "0",
    LOG_LEVEL: "warn",
    ...env,
  };
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...denoFlags, new URL(`../../${entry}`, import.meta.url).pathname],
    env: fullEnv,
    stdout: "null",
    stderr: dropStderr ? "piped" : "inherit",
  }).spawn();
  if (dropStderr) void forwardStderr(child.stderr, dropStderr);
  if (!await waitForPort(port, 60_000)) {
    child.kill("SIGKILL");
    throw new Error(`${entry} did not listen on port ${port} within 60 s`);
  }
  let running = true;
  const status = child.status.then((status) => {
    running = false;
    return status;
  });
  return {
    address: `127.0.0.1:${port}`,
    grpcAddress: `127.0.0.1:${fullEnv.GRPC_PORT}`,
    env: fullEnv,
    pid: child.pid,
    get running() {
      return running;
    },
    status,
    cpuSeconds: async () => {
      // Fields 14 and 15 of /proc/<pid>/stat: utime and stime in clock ticks (100 per second).
      const stat = await Deno.readTextFile(`/proc/${child.pid}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(fields[11]) + Number(fields[12])) / 100;
    },
    stop: async (signal: Deno.Signal = "SIGTERM") => {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
      await child.status;
    },
  };
}

async function forwardStderr(
  stream: ReadableStream<Uint8Array<ArrayBuffer>>,
  drop: RegExp,
): Promise<void> {
  let pending = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (pending + text).split("\n");
    pending = lines.pop() ?? "";
    const kept = lines.filter((line) => !drop.test(line));
    if (kept.length > 0) await Deno.stderr.write(new TextEncoder().encode(kept.join("\n") + "\n"));
  }
}
