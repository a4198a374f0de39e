/**
 * `deno task dev` as a child process (services/main.ts: every service, embedded store) on a
 * free port and a temporary SQLite file, for tests that need a real separate server: the demo,
 * and clients that must survive the server dying. Stopped with SIGKILL: a graceful shutdown's
 * GOAWAY reaching a live client session in this process can abort Deno (denoland/deno#36788).
 */

import { join } from "node:path";
import { freePort, waitForPort } from "../support/net.ts";

const MAIN = new URL("../../services/main.ts", import.meta.url).pathname;

export class DevServer {
  #child: Deno.ChildProcess | undefined;
  #log = "";

  private constructor(
    readonly port: number,
    readonly sqlitePath: string,
    private readonly env: Record<string, string>,
  ) {}

  static async start(env: Record<string, string> = {}): Promise<DevServer> {
    const dir = await Deno.makeTempDir({ prefix: "guardyn-dev-" });
    const server = new DevServer(freePort(), join(dir, "guardyn.db"), env);
    await server.restart();
    return server;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get log(): string {
    return this.#log;
  }

  async restart(): Promise<void> {
    if (this.#child) throw new Error("the server is running");
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN],
      env: {
        ...this.env,
        NO_COLOR: "1",
        HTTP_PORT: String(this.port),
        GRPC_LISTENER: "off",
        METRICS_PORT: "0",
        SQLITE_PATH: this.sqlitePath,
        LOG_LEVEL: "warn",
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    void this.#keep(this.#child.stdout);
    void this.#keep(this.#child.stderr);
    if (!await waitForPort(this.port, 60_000)) {
      throw new Error(`the dev server did not start:\n${this.#log.slice(-2000)}`);
    }
  }

  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
  }

  async remove(): Promise<void> {
    await this.kill();
    await Deno.remove(join(this.sqlitePath, ".."), { recursive: true }).catch(() => {});
  }

  async #keep(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      this.#log = (this.#log + decoder.decode(chunk, { stream: true })).slice(-20_000);
    }
  }
}
