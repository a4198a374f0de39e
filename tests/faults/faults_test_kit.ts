/**
 * Tools for fault tests: messaging instances as child processes (killable with SIGKILL, like a
 * crashed pod), a receiver that reconnects and deduplicates by envelope id as a real client
 * does, and a sender that retries with the same client message id.
 */

import * as grpc from "@grpc/grpc-js";
import type { Envelope } from "../../proto/gen/guardyn/v1/messaging.ts";
import {
  type Messaging,
  messagingClient,
  ReceiveSession,
  send,
} from "../../services/messaging/messaging_test_kit.ts";
import type { TestDevice } from "../support/accounts_test_kit.ts";
import type { SendMessageRequest } from "../../proto/gen/guardyn/v1/messaging.ts";
import { freePort } from "../support/net.ts";
import { sleep } from "../support/wait.ts";

const MAINS = {
  messaging: new URL("../../services/messaging/main.ts", import.meta.url).pathname,
  groups: new URL("../../services/groups/main.ts", import.meta.url).pathname,
  media: new URL("../../services/media/main.ts", import.meta.url).pathname,
};

/** `deno run -A services/<service>/main.ts` on a fixed port, restartable after a kill. */
export class MessagingProcess {
  #child: Deno.ChildProcess | undefined;
  /** The tail of the child's log, for failure messages. */
  #stderr = "";

  private constructor(
    readonly port: number,
    private readonly env: Record<string, string>,
    private readonly service: keyof typeof MAINS,
  ) {}

  static async start(
    env: Record<string, string>,
    service: keyof typeof MAINS = "messaging",
  ): Promise<MessagingProcess> {
    const instance = new MessagingProcess(freePort(), env, service);
    await instance.restart();
    return instance;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async restart(): Promise<void> {
    if (this.#child) throw new Error("the instance is already running");
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAINS[this.service]],
      env: {
        ...this.env,
        NO_COLOR: "1",
        HTTP_PORT: String(this.port),
        GRPC_LISTENER: "off",
        METRICS_PORT: "0",
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    void this.#keepTail(child.stderr);
    await waitForBanner(child.stdout, 60_000, () => this.#stderr);
  }

  /** SIGKILL: no drain, no goodbye, like a crashed pod. Also the teardown of a test. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await child.status;
  }

  /** Fails with the log tail when the instance exited by itself (it should not). */
  async assertRunning(): Promise<void> {
    const child = this.#child;
    if (!child) throw new Error("the instance is not running");
    const exited = await Promise.race([child.status, sleep(0).then(() => undefined)]);
    if (exited) {
      throw new Error(
        `${this.service} instance exited with ${exited.code}:\n${this.log.slice(-3000)}`,
      );
    }
  }

  get log(): string {
    return this.#stderr;
  }

  async #keepTail(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      this.#stderr = (this.#stderr + decoder.decode(chunk)).slice(-20_000);
    }
  }
}

async function waitForBanner(
  stdout: ReadableStream<Uint8Array>,
  timeoutMs: number,
  stderr: () => string,
): Promise<void> {
  const reader = stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + timeoutMs;
  while (!text.includes("Press Ctrl-C")) {
    const next = await Promise.race([reader.read(), sleep(Math.max(0, deadline - Date.now()))]);
    if (!next || (next as ReadableStreamReadResult<Uint8Array>).done) {
      throw new Error(`messaging instance did not start: ${text}\n${stderr().slice(-2000)}`);
    }
    text += decoder.decode((next as ReadableStreamReadResult<Uint8Array>).value);
  }
  // Keep draining stdout so the child never blocks on a full pipe.
  void (async () => {
    try {
      while (!(await reader.read()).done) { /* discard */ }
    } catch { /* the child exited */ }
  })();
}

/**
 * A device that keeps a Receive stream open against whatever `address()` says, reconnecting
 * after any end, acknowledging every envelope, and de-duplicating by envelope id.
 */
export class ResilientReceiver {
  /** Unique envelopes by id, with the time each was first seen. */
  readonly unique = new Map<string, { envelope: Envelope; atMs: number }>();
  /** Every envelope event, duplicates included. */
  deliveries = 0;
  streamsOpened = 0;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #client: { address: string; m: Messaging } | undefined;
  #session: ReceiveSession | undefined;

  constructor(private readonly device: TestDevice, private readonly address: () => string) {}

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#session && !this.#session.done) await this.#session.close().catch(() => {});
    await this.#loop;
    this.#client?.m.close();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const address = this.address();
      if (this.#client?.address !== address) {
        this.#client?.m.close();
        this.#client = { address, m: messagingClient(address) };
      }
      const session = new ReceiveSession(this.#client.m, this.device.accessToken);
      this.#session = session;
      this.streamsOpened++;
      let taken = 0;
      while (!session.done && !this.#stopped) {
        const fresh = session.envelopes().slice(taken);
        taken += fresh.length;
        for (const envelope of fresh) {
          this.deliveries++;
          if (!this.unique.has(envelope.id)) {
            this.unique.set(envelope.id, { envelope, atMs: Date.now() });
          }
        }
        if (fresh.length > 0 && !session.done) {
          try {
            session.ack(fresh.map((envelope) => envelope.id));
          } catch { /* the stream is ending; the next one redelivers */ }
        }
        await sleep(5);
      }
      if (!this.#stopped) await sleep(100 + Math.random() * 100);
    }
  }
}

/** Sends, retrying an UNAVAILABLE answer with the same client message id (idempotent). */
export async function sendWithRetry(
  m: Messaging,
  from: TestDevice,
  request: SendMessageRequest,
  timeoutMs = 20_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1;; attempt++) {
    try {
      await send(m, from, request);
      return attempt;
    } catch (error) {
      const code = (error as grpc.ServiceError).code;
      const retryable = code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED;
      if (!retryable || Date.now() > deadline) throw error;
      await sleep(100);
    }
  }
}
