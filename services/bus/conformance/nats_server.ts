/**
 * Test helpers for the JetStream adapter: the shared server named by NATS_URL, and private
 * nats-server processes that a test can kill and restart.
 */

import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { freePort, waitForPort } from "../../../tests/support/net.ts";

export const NATS_URL = Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222";
const NATS_SERVER_BIN = Deno.env.get("NATS_SERVER_BIN") ?? "/usr/sbin/nats-server";

/** Fails with a message saying how to start the server the JetStream tests need. */
export async function requireNatsServer(url = NATS_URL): Promise<void> {
  try {
    const nc = await connect({ servers: url, timeout: 2_000, reconnect: false });
    try {
      await jetstreamManager(nc, { timeout: 2_000 });
    } finally {
      await nc.close();
    }
  } catch (error) {
    throw new Error(
      `the JetStream tests need a nats-server with JetStream at NATS_URL=${url} ` +
        `(start one: nats-server -js -p 4222 -sd /tmp/nats-dev &): ${(error as Error).message}`,
    );
  }
}

/** Deletes streams created by a test, over a short-lived connection of its own. */
export async function deleteStreams(url: string, names: string[]): Promise<void> {
  const nc = await connect({ servers: url, timeout: 2_000, reconnect: false });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 2_000 });
    // Each event stream has its broadcast stream beside it (jetstream_topology.ts).
    for (const name of names.flatMap((n) => [n, `${n}_BROADCAST`])) {
      await jsm.streams.delete(name).catch(() => false);
    }
  } finally {
    await nc.close();
  }
}

/** A nats-server child process on a fixed port and store directory, so it can be restarted. */
export class NatsServerProcess {
  #child: Deno.ChildProcess | undefined;

  private constructor(
    readonly port: number,
    readonly storeDir: string,
    readonly jetstream: boolean,
  ) {}

  static async start(options: { jetstream?: boolean } = {}): Promise<NatsServerProcess> {
    const storeDir = await Deno.makeTempDir({ prefix: "nats-" });
    const server = new NatsServerProcess(freePort(), storeDir, options.jetstream ?? true);
    await server.restart();
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async restart(): Promise<void> {
    if (this.#child) throw new Error("nats-server is already running");
    this.#child = new Deno.Command(NATS_SERVER_BIN, {
      args: [
        ...(this.jetstream ? ["-js"] : []),
        ...["-a", "127.0.0.1", "-p", String(this.port), "-sd", this.storeDir],
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    if (!await waitForPort(this.port, 5_000, 25)) {
      throw new Error(`nats-server did not listen on ${this.port} within 5000 ms`);
    }
  }

  /** SIGKILL: no shutdown, no flush, like a crashed pod. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    child.kill("SIGKILL");
    await child.status;
  }

  async stop(): Promise<void> {
    await this.kill();
    await Deno.remove(this.storeDir, { recursive: true }).catch(() => undefined);
  }
}
