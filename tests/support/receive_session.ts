/**
 * A Receive stream for tests, recording what arrives, and the messaging client it runs on.
 * Shared by the suites of every service that writes mailboxes.
 */

import * as grpc from "@grpc/grpc-js";
import {
  type ClosedReason,
  type Envelope,
  MessagingServiceClient,
  MessagingServiceService,
  type ReceiveRequest,
  type ReceiveResponse,
} from "../../proto/gen/guardyn/v1/messaging.ts";
import { bearer } from "./grpc.ts";
import { webClient } from "./web.ts";

export type Messaging = InstanceType<typeof MessagingServiceClient>;

export function messagingClient(address: string): Messaging {
  return webClient<Messaging>(MessagingServiceService, address);
}

export interface StreamEnd {
  code: grpc.status;
  reason: string | undefined;
  details: string;
}

/** A Receive stream that records every event; tests wait on what they expect. */
export class ReceiveSession {
  readonly call: grpc.ClientDuplexStream<ReceiveRequest, ReceiveResponse>;
  readonly events: ReceiveResponse[] = [];
  readonly ended: Promise<StreamEnd>;
  #end: StreamEnd | undefined;
  #nonce = 1_000;

  /** `halfDuplex`: ReceiveEvents (acknowledge with Acknowledge calls, not `ack`). */
  constructor(m: Messaging, token: string | undefined, halfDuplex = false) {
    this.call = halfDuplex
      ? m.receiveEvents({}, bearer(token)) as unknown as typeof this.call
      : m.receive(bearer(token));
    this.call.on("data", (event: ReceiveResponse) => this.events.push(event));
    // Errors also arrive as the status; listening keeps them from becoming uncaught.
    this.call.on("error", () => {});
    this.ended = new Promise((resolve) => {
      this.call.on("status", (status: grpc.StatusObject) => {
        const reason = status.metadata?.get("guardyn-error-reason")[0];
        this.#end = {
          code: status.code,
          reason: typeof reason === "string" ? reason : undefined,
          details: status.details,
        };
        resolve(this.#end);
      });
    });
  }

  get done(): boolean {
    return this.#end !== undefined;
  }

  envelopes(): Envelope[] {
    return this.events.flatMap((e) => e.event?.$case === "envelope" ? [e.event.value] : []);
  }

  /** Stored (non-ephemeral) envelopes only. */
  mail(): Envelope[] {
    return this.envelopes().filter((envelope) => !envelope.ephemeral);
  }

  drainedCount(): number | undefined {
    for (const e of this.events) {
      if (e.event?.$case === "queueDrained") return e.event.value.backlogCount;
    }
    return undefined;
  }

  closedReason(): ClosedReason | undefined {
    for (const e of this.events) if (e.event?.$case === "closed") return e.event.value.reason;
    return undefined;
  }

  ack(ids: string[]): void {
    this.call.write({ kind: { $case: "ack", value: { envelopeIds: ids } } });
  }

  ackAll(): void {
    const ids = this.mail().map((envelope) => envelope.id);
    for (let i = 0; i < ids.length; i += 500) this.ack(ids.slice(i, i + 500));
  }

  ping(nonce: number): void {
    this.call.write({ kind: { $case: "ping", value: { nonce } } });
  }

  async waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what}; got ${this.summary()}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  waitForMail(count: number, timeoutMs?: number): Promise<void> {
    return this.waitFor(() => this.mail().length >= count, `${count} envelopes`, timeoutMs);
  }

  waitForDrained(timeoutMs?: number): Promise<void> {
    return this.waitFor(() => this.drainedCount() !== undefined, "QueueDrained", timeoutMs);
  }

  /**
   * Waits for a Pong (so every ack sent before is applied), then half-closes the stream (the
   * server ends it with OK) and waits for its status. A half-close rather than a cancel: many
   * stream resets at once can abort a Deno server inside nghttp2 (denoland/deno#36788).
   */
  async close(): Promise<StreamEnd> {
    if (!this.done) {
      await this.sync();
      this.call.end();
    }
    return await this.ended;
  }

  /** A ping round trip: the server answers once the acks sent before it are applied. */
  async sync(): Promise<void> {
    const nonce = ++this.#nonce;
    this.ping(nonce);
    await this.waitFor(
      () =>
        this.done ||
        this.events.some((e) => e.event?.$case === "pong" && e.event.value.nonce === nonce),
      `pong ${nonce}`,
    );
  }

  summary(): string {
    const kinds = this.events.map((e) => e.event?.$case ?? "?");
    return `${kinds.length} events [${kinds.slice(-8).join(", ")}]` +
      (this.#end ? `, ended ${grpc.status[this.#end.code]} ${this.#end.details}` : "");
  }
}
