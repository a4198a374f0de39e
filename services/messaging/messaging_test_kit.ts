/**
 * Test kit for the messaging service: accounts with several devices that have published keys,
 * envelopes addressed to every device, and a Receive stream wrapper that records what arrives.
 */

import * as grpc from "@grpc/grpc-js";
import {
  ClosedReason,
  type Envelope,
  EnvelopeType,
  type OutgoingEnvelope,
  type SendMessageRequest,
  type SendMessageResponse,
  type SendStreamRequest,
  type SendStreamResponse,
} from "../../proto/gen/guardyn/v1/messaging.ts";
import { bearer, unary } from "../../tests/support/grpc.ts";
import {
  type Messaging,
  messagingClient,
  ReceiveSession,
  type StreamEnd,
} from "../../tests/support/receive_session.ts";

export { type Messaging, messagingClient, ReceiveSession, type StreamEnd };
import {
  type Clients,
  login,
  publishKeys,
  register,
  type TestDevice,
} from "../../tests/support/accounts_test_kit.ts";

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
    ttlSeconds: 0,
    urgent: false,
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
