/**
 * Starts one built service (a compiled binary or the offline image form) on loopback with a
 * throwaway embedded store, and checks it is really usable before a build is called done: its
 * /readyz answers 200, and for the auth service a Register call succeeds through the gRPC-Web
 * listener, which hashes the password with the native Argon2 addon (proof that it loads).
 */

import { join } from "node:path";
import { denoHttpClient, webServiceClient } from "../client/web_rpc.ts";
import { AuthServiceService } from "../proto/gen/guardyn/v1/auth.ts";
import { Platform } from "../proto/gen/guardyn/v1/common.ts";

export interface SmokeResult {
  service: string;
  ready: boolean;
  /** Auth only: a Register call succeeded (the Argon2 addon loaded and hashed). */
  argon2?: boolean;
}

const START_TIMEOUT_MS = 60_000;

export interface LocalServer {
  /** host:port of the API listener (gRPC-Web and Connect). */
  api: string;
  /** host:port of the metrics listener (/metrics, /healthz, /readyz). */
  metrics: string;
  stop(): Promise<void>;
}

/**
 * Starts a Guardyn server process on loopback (ports chosen by the system, a throwaway
 * embedded store) and waits for its listeners; fails fast when it exits first.
 */
export async function startLocalServer(
  command: string,
  args: readonly string[],
  extraEnv: Record<string, string> = {},
  what = "server",
): Promise<LocalServer> {
  const dir = await Deno.makeTempDir({ prefix: "guardyn-server-" });
  const child = new Deno.Command(command, {
    args: [...args],
    env: {
      DOMAIN: "smoke.test",
      STORE_BACKEND: "sqlite",
      SQLITE_PATH: join(dir, "data", "guardyn.db"),
      HTTP_PORT: "0",
      GRPC_PORT: "0",
      METRICS_PORT: "0",
      LOG_LEVEL: "warn",
      NO_COLOR: "1",
      ...extraEnv,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  let errors = "";
  const decoder = new TextDecoder();
  const reading = (async () => {
    for await (const chunk of child.stdout) output += decoder.decode(chunk);
  })();
  const erroring = (async () => {
    for await (const chunk of child.stderr) errors = (errors + decoder.decode(chunk)).slice(-8000);
  })();
  let exited: Deno.CommandStatus | undefined;
  void child.status.then((status) => exited = status);
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await child.status;
    await Promise.allSettled([reading, erroring]);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const api = /API\s+http:\/\/(127\.0\.0\.1:\d+)/.exec(output)?.[1];
      const metrics = /metrics\s+http:\/\/(127\.0\.0\.1:\d+)/.exec(output)?.[1];
      if (api && metrics) return { api, metrics, stop };
      if (exited) {
        throw new Error(`${what} exited with ${exited.code} before it started:\n${errors}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`${what} did not start within ${START_TIMEOUT_MS} ms:\n${errors}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (error) {
    await stop();
    throw error;
  }
}

export async function smokeStart(
  service: string,
  command: string,
  args: readonly string[],
  extraEnv: Record<string, string> = {},
): Promise<SmokeResult> {
  const server = await startLocalServer(command, args, extraEnv, service);
  try {
    const ready = (await fetch(`http://${server.metrics}/readyz`).then(async (r) => {
      await r.body?.cancel();
      return r.status;
    })) === 200;
    if (service !== "auth") return { service, ready };
    return { service, ready, argon2: await registers(server.api) };
  } finally {
    await server.stop();
  }
}

async function registers(address: string): Promise<boolean> {
  const baseUrl = `http://${address}`;
  const httpClient = denoHttpClient(baseUrl);
  const auth = webServiceClient(AuthServiceService, {
    baseUrl,
    ...(httpClient ? { httpClient } : {}),
  });
  try {
    const response = await new Promise<{ accountId?: string }>((resolve, reject) =>
      auth.register!(
        {
          username: `smoke_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`,
          password: "smoke test password 1",
          device: { name: "smoke", platform: Platform.PLATFORM_LINUX, registrationId: 1 },
        },
        (error: unknown, value: { accountId?: string }) => error ? reject(error) : resolve(value),
      )
    );
    return typeof response.accountId === "string" && response.accountId.length > 0;
  } finally {
    httpClient?.close();
  }
}
