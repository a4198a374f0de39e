/**
 * Real backends for the test suites. A backend named in the environment is used as is (and a
 * test fails when it is absent); otherwise one is started here and stopped afterwards.
 */

import { freePort, portOpen, waitForPort } from "../tests/support/net.ts";
import { s3VariablesFromEnv } from "../services/store/blob_config.ts";

const NATS_DEFAULT_PORT = 4222;
const CQL_DEFAULT = "127.0.0.1:9042";

export interface Backends {
  env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startBackends(): Promise<Backends> {
  const env: Record<string, string> = {};
  const stops: (() => Promise<void>)[] = [];
  try {
    env.NATS_URL = Deno.env.get("NATS_URL") ?? await ensureNats(stops);
    env.CQL_CONTACT_POINTS = Deno.env.get("CQL_CONTACT_POINTS") ?? await ensureCassandra(stops);
    if (Deno.env.get("S3_ENDPOINT")) {
      Object.assign(env, s3VariablesFromEnv());
    } else Object.assign(env, await startVersitygw(stops));
  } catch (error) {
    await stopAll(stops);
    throw error;
  }
  return { env, stop: () => stopAll(stops) };
}

async function stopAll(stops: (() => Promise<void>)[]) {
  for (const stop of stops.reverse()) await stop().catch(() => {});
}

/** Starts `nats-server -js` on a free loopback port with a temporary store. */
export async function startNatsServer(
  port = freePort(),
  storeDir?: string,
): Promise<{ url: string; port: number; storeDir: string; stop(): Promise<void> }> {
  const dir = storeDir ?? await Deno.makeTempDir({ prefix: "guardyn-nats-" });
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("nats-server", {
      args: ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", dir],
      stdout: "null",
      stderr: "null",
    }).spawn();
  } catch (error) {
    throw new Error(
      `cannot start nats-server (install it: apt-get install nats-server): ${
        (error as Error).message
      }`,
    );
  }
  if (!await waitForPort(port, 10_000)) {
    child.kill("SIGKILL");
    throw new Error(`nats-server did not listen on 127.0.0.1:${port} within 10 s`);
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir: dir,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await child.status;
      if (!storeDir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

async function ensureNats(stops: (() => Promise<void>)[]): Promise<string> {
  if (await portOpen("127.0.0.1", NATS_DEFAULT_PORT)) {
    log(`using the nats-server already on 127.0.0.1:${NATS_DEFAULT_PORT}`);
    return `nats://127.0.0.1:${NATS_DEFAULT_PORT}`;
  }
  const nats = await startNatsServer();
  log(`started nats-server with JetStream on ${nats.url}`);
  stops.push(nats.stop);
  return nats.url;
}

async function ensureCassandra(stops: (() => Promise<void>)[]): Promise<string> {
  const [host, port] = CQL_DEFAULT.split(":") as [string, string];
  const wasUp = await portOpen(host, Number(port));
  const script = new URL("../.ci/cassandra.sh", import.meta.url).pathname;
  const result = await new Deno.Command("bash", {
    args: [script, "start"],
    stdout: "inherit",
    stderr: "inherit",
  })
    .output();
  if (!result.success) throw new Error("Apache Cassandra did not start (see the log above)");
  if (!wasUp && Deno.env.get("GUARDYN_KEEP_BACKENDS") !== "1") {
    stops.push(async () => {
      await new Deno.Command("bash", { args: [script, "stop"], stdout: "null", stderr: "inherit" })
        .output();
    });
  }
  return CQL_DEFAULT;
}

/**
 * Starts versitygw (an S3 server; infra/tools/install.sh builds it into the cache) on a free
 * loopback port, backed by a temporary folder, with credentials made up for this run.
 */
async function startVersitygw(stops: (() => Promise<void>)[]): Promise<Record<string, string>> {
  const cache = Deno.env.get("GUARDYN_CACHE") ?? `${Deno.env.get("HOME")}/.cache/guardyn`;
  const binary = `${cache}/bin/versitygw`;
  const root = await Deno.makeTempDir({ prefix: "guardyn-s3-" });
  const bucket = "guardyn-test";
  await Deno.mkdir(`${root}/${bucket}`);
  const port = freePort();
  const access = `test${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const secret = crypto.randomUUID().replaceAll("-", "");
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(binary, {
      args: ["--access", access, "--secret", secret, "--port", `127.0.0.1:${port}`, "posix", root],
      stdout: "null",
      stderr: "null",
    }).spawn();
  } catch (error) {
    throw new Error(
      `cannot start versitygw at ${binary} (bash infra/tools/install.sh builds it): ${
        (error as Error).message
      }`,
    );
  }
  if (!await waitForPort(port, 15_000)) {
    child.kill("SIGKILL");
    throw new Error(`versitygw did not listen on 127.0.0.1:${port} within 15 s`);
  }
  log(`started versitygw (S3) on 127.0.0.1:${port}`);
  stops.push(async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
    await Deno.remove(root, { recursive: true }).catch(() => {});
  });
  return {
    S3_ENDPOINT: `http://127.0.0.1:${port}`,
    S3_REGION: "us-east-1",
    S3_BUCKET: bucket,
    S3_ACCESS_KEY_ID: access,
    S3_SECRET_ACCESS_KEY: secret,
  };
}

function log(message: string) {
  console.error(`test: ${message}`);
}
