/**
 * Test kit for the messaging service: accounts with several devices that have published keys,
 * envelopes addressed to every device, and a Receive stream wrapper that records what arrives.
 */

import * as grpc from "@grpc/grpc-js";
import {
  ClosedReason,
  type Envelope,
  EnvelopeType,
  MessagingServiceClient,
  MessagingServiceService,
  type OutgoingEnvelope,
  type ReceiveRequest,
  type ReceiveResponse,
  type SendMessageRequest,
  type SendMessageResponse,
  type SendStreamRequest,
  type SendStreamResponse,
} from "../../proto/gen/guardyn/v1/messaging.ts";
import { bearer, unary } from "../../tests/support/grpc.ts";
import { webClient } from "../../tests/support/web.ts";
import {
  type Clients,
  login,
  publishKeys,
  register,
  type TestDevice,
} from "../../tests/support/accounts_test_kit.ts";

export type Messaging = InstanceType<typeof MessagingServiceClient>;

export function messagingClient(address: string): Messaging {
  return webClient<Messaging>(MessagingServiceService, address);
}

/** The registration id every test device registers with (auth_test_kit's default). */
export const REGISTRATION_ID = 1234;

export interface TestAccount {
  accountId: string;
  username: string;
  devices: TestDevice[];
}

/** Registers an account whose `deviceCount` devices all published keys (all addressable). */
export async function account(c: Clients, deviceCount = 2): Promise<TestAccount> {
  const first = await register(c);
  const identity = await publishKeys(c, first);
  const devices = [first];
  for (let i = 1; i < deviceCount; i++) {
    const device = await login(c, first.username, `device-${i}`);
    await publishKeys(c, device, { identity });
    devices.push(device);
  }
  return { accountId: first.accountId, username: first.username, devices };
}

export function envelopeFor(
  device: { deviceId: string },
  text: string,
  registrationId = REGISTRATION_ID,
): OutgoingEnvelope {
  return {
    deviceId: device.deviceId,
    registrationId,
    type: EnvelopeType.ENVELOPE_TYPE_RATCHET_MESSAGE,
    content: new TextEncoder().encode(`${text} for ${device.deviceId}`),
  };
}

/** A message from `from` to every device of `to`, with sync copies to `from`'s other devices. */
export function messageTo(
  from: TestDevice,
  fromAccount: TestAccount,
  to: TestAccount,
  text: string,
  extra: Partial<SendMessageRequest> = {},
): SendMessageRequest {
  return {
    recipientAccountId: to.accountId,
    clientMessageId: crypto.randomUUID(),
    envelopes: to.devices.map((device) => envelopeFor(device, text)),
    syncEnvelopes: fromAccount.devices
      .filter((device) => device.deviceId !== from.deviceId)
      .map((device) => envelopeFor(device, text)),
    ephemeral: false,
    silent: false,
    ...extra,
  };
}

export function send(
  m: Messaging,
  from: TestDevice,
  request: SendMessageRequest,
): Promise<SendMessageResponse> {
  return unary(m.sendMessage.bind(m), request, from.accessToken);
}

export const textOf = (envelope: Envelope) => new TextDecoder().decode(envelope.content);

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

export { ClosedReason };

/** A SendStream: `send` resolves with the answer carrying the request's id. */
export class SendStreamSession {
  readonly call: grpc.ClientDuplexStream<SendStreamRequest, SendStreamResponse>;
  readonly ended: Promise<StreamEnd>;
  #nextId = 1;
  #waiting = new Map<
    number,
    { resolve(response: SendStreamResponse): void; reject(error: Error): void }
  >();

  constructor(m: Messaging, token: string | undefined) {
    this.call = m.sendStream(bearer(token));
    this.call.on("data", (response: SendStreamResponse) => {
      this.#waiting.get(response.requestId)?.resolve(response);
      this.#waiting.delete(response.requestId);
    });
    this.call.on("error", () => {});
    this.ended = new Promise((resolve) => {
      this.call.on("status", (status: grpc.StatusObject) => {
        const reason = status.metadata?.get("guardyn-error-reason")[0];
        const end = {
          code: status.code,
          reason: typeof reason === "string" ? reason : undefined,
          details: status.details,
        };
        // Sends the stream can no longer answer fail instead of waiting forever.
        for (const waiting of this.#waiting.values()) {
          waiting.reject(new Error(`stream ended (${grpc.status[end.code]}: ${end.details})`));
        }
        this.#waiting.clear();
        resolve(end);
      });
    });
  }

  /** Writes one request (`send` may be left out to test refusals) and waits for its answer. */
  send(send: SendMessageRequest | undefined): Promise<SendStreamResponse> {
    const requestId = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(requestId, { resolve, reject });
      this.call.write({ requestId, send });
    });
  }

  /** Half-closes; the server ends the stream with OK once every request is answered. */
  async close(): Promise<StreamEnd> {
    this.call.end();
    return await this.ended;
  }
}
