/**
 * The all-in-one process as a user runs it (`deno task dev`): it starts on the embedded store,
 * prints its endpoints, answers gRPC health and /metrics, and stops cleanly on SIGINT; bad
 * configuration and unreachable backends stop it with one clear error and a non-zero exit.
 */

import * as grpc from "@grpc/grpc-js";
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "../tests/assert.ts";
import { NO_SANITIZERS } from "../tests/support/wait.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

function spawnMain(env: Record<string, string>) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN],
    env: { NO_COLOR: "1", GRPC_PORT: "0", HTTP_PORT: "0", METRICS_PORT: "0", ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function runToExit(env: Record<string, string>) {
  const output = await spawnMain(env).output();
  return {
    code: output.code,
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** Reads stdout until the banner's metrics line appears; returns the text read. */
async function readBanner(child: Deno.ChildProcess): Promise<string> {
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + 60_000;
  while (!text.includes("Press Ctrl-C") && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value);
  }
  reader.releaseLock();
  return text;
}

function healthCheck(address: string): Promise<number> {
  const method = {
    path: "/grpc.health.v1.Health/Check",
    requestStream: false,
    responseStream: false,
    requestSerialize: () => Buffer.alloc(0),
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => (b.length >= 2 ? b[1]! : 0),
  } as const;
  const Health = grpc.makeGenericClientConstructor({ check: method }, "Health");
  const client = new Health(address, grpc.credentials.createInsecure()) as unknown as
    & grpc.Client
    & { check: (r: unknown, cb: (e: grpc.ServiceError | null, s: number) => void) => void };
  return new Promise((resolve, reject) =>
    client.check({}, (error, status) => {
      client.close();
      error ? reject(error) : resolve(status);
    })
  );
}

Deno.test({
  name: "main: starts on the embedded store, serves health and metrics, stops on SIGINT",
  ...NO_SANITIZERS,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "guardyn-main-" });
    const child = spawnMain({ SQLITE_PATH: join(dir, "guardyn.db") });
    const stderrText = new Response(child.stderr).text();
    try {
      const banner = await readBanner(child);
      assertMatch(banner, /store: sqlite, bus: memory/);
      const grpcPort = /gRPC\s+127\.0\.0\.1:(\d+)/.exec(banner)?.[1];
      const metricsUrl = /(http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(banner)?.[1];
      const apiUrl = /API\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(banner)?.[1];
      assert(grpcPort && metricsUrl && apiUrl, banner);
      // Native gRPC through the gateway workers, and Connect on the API listener.
      assertEquals(await healthCheck(`127.0.0.1:${grpcPort}`), 1, "SERVING");
      const connect = await fetch(`${apiUrl}/grpc.health.v1.Health/Check`, {
        method: "POST",
        headers: { "content-type": "application/proto" },
        body: new Uint8Array(0),
      });
      assertEquals([...new Uint8Array(await connect.arrayBuffer())], [0x08, 0x01], "SERVING");
      const metrics = await (await fetch(metricsUrl)).text();
      assert(metrics.includes("guardyn_grpc_server_handled_total"), metrics.slice(0, 500));
      const ready = await fetch(metricsUrl.replace("/metrics", "/readyz"));
      assertEquals([ready.status, await ready.text()], [200, "ready\n"]);
      child.kill("SIGINT");
      const status = await child.status;
      assertEquals(status.code, 0);
      const logs = await stderrText;
      assert(logs.includes('"msg":"store opened"') || logs.includes("sqlite"), logs);
      assert(logs.includes('"msg":"stopped"'), logs);
      await Deno.stat(join(dir, "guardyn.db"));
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("main: invalid configuration is one clear error and exit code 1", async () => {
  const { code, stderr } = await runToExit({ GRPC_PORT: "99999", DOMAIN: "bad domain" });
  assertEquals(code, 1);
  assertMatch(stderr, /guardyn: cannot start: invalid configuration/);
  assertMatch(stderr, /GRPC_PORT="99999" must be an integer in \[0, 65535\]/);
  assertMatch(stderr, /DOMAIN=/);
});

Deno.test("main: an unreachable CQL cluster stops startup, never falling back to SQLite", async () => {
  const dir = await Deno.makeTempDir({ prefix: "guardyn-main-" });
  try {
    await Deno.writeTextFile(join(dir, "keys.json"), "{}");
    const { code, stderr } = await runToExit({
      STORE_BACKEND: "cql",
      CQL_CONTACT_POINTS: "127.0.0.1:1",
      CQL_CONNECT_TIMEOUT_MS: "1000",
      TOKEN_KEYS_FILE: join(dir, "keys.json"),
      SQLITE_PATH: join(dir, "should-not-exist.db"),
      MEDIA_DIR: join(dir, "media"),
    });
    assertEquals(code, 1);
    assertMatch(stderr, /cannot start: .*127\.0\.0\.1:1/);
    const sqliteCreated = await Deno.stat(join(dir, "should-not-exist.db")).then(
      () => true,
      () => false,
    );
    assert(!sqliteCreated, "no embedded store was written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main: an unreachable NATS stops startup with a clear error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "guardyn-main-" });
  try {
    const { code, stderr } = await runToExit({
      SQLITE_PATH: join(dir, "guardyn.db"),
      BUS_BACKEND: "nats",
      NATS_URL: "nats://127.0.0.1:1",
      NATS_CONNECT_TIMEOUT_MS: "1000",
    });
    assertEquals(code, 1);
    assertMatch(stderr, /cannot start: .*nats:\/\/127\.0\.0\.1:1/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
