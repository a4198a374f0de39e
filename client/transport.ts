/**
 * The gRPC transport: one HTTP/2 channel to one server address shared by every service client,
 * unary calls as promises with a deadline and the bearer token, and every failure translated
 * into a GuardynClientError. grpc-js reconnects the channel by itself; callers retry calls.
 */

import * as grpc from "@grpc/grpc-js";
import {
  AuthServiceClient,
  DirectoryServiceClient,
  KeyDirectoryServiceClient,
} from "../proto/gen/guardyn/v1/auth.ts";
import {
  MessagingServiceClient,
  type ReceiveRequest,
  type ReceiveResponse,
} from "../proto/gen/guardyn/v1/messaging.ts";
import { fromServiceError } from "./errors.ts";

export interface TransportOptions {
  /** "host:port" of the Guardyn API. */
  address: string;
  /** TLS with the system roots (production) or plaintext (local development). Default: plaintext. */
  tls?: boolean;
  /** Deadline of one unary call. */
  callTimeoutMs?: number;
}

/** The fullest overload of a generated unary method: TypeScript infers Req/Res from it. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (error: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

export type ReceiveCall = grpc.ClientDuplexStream<ReceiveRequest, ReceiveResponse>;

const DEFAULT_CALL_TIMEOUT_MS = 30_000;

export function bearer(token: string | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

export class Transport {
  readonly address: string;
  readonly auth: InstanceType<typeof AuthServiceClient>;
  readonly keys: InstanceType<typeof KeyDirectoryServiceClient>;
  readonly directory: InstanceType<typeof DirectoryServiceClient>;
  readonly messaging: InstanceType<typeof MessagingServiceClient>;
  readonly #channel: grpc.Channel;
  readonly #callTimeoutMs: number;
  #closed = false;

  constructor(options: TransportOptions) {
    if (!/^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$/.test(options.address)) {
      throw new TypeError(
        `server address must be host:port, got ${JSON.stringify(options.address)}`,
      );
    }
    this.address = options.address;
    this.#callTimeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    const credentials = options.tls
      ? grpc.credentials.createSsl()
      : grpc.credentials.createInsecure();
    // A channel of our own (no process-wide subchannel pool): closing it really closes the
    // connection, and two SDK clients in one process never share one.
    this.#channel = new grpc.Channel(options.address, credentials, {
      "grpc.use_local_subchannel_pool": 1,
      // No channelz debug service in a client: its per-call bookkeeping is pure overhead.
      "grpc.enable_channelz": 0,
      "grpc.max_receive_message_length": 8 * 1024 * 1024,
    });
    const shared = { channelOverride: this.#channel };
    this.auth = new AuthServiceClient(options.address, credentials, shared);
    this.keys = new KeyDirectoryServiceClient(options.address, credentials, shared);
    this.directory = new DirectoryServiceClient(options.address, credentials, shared);
    this.messaging = new MessagingServiceClient(options.address, credentials, shared);
  }

  /** One unary call; rejects with a GuardynClientError. */
  unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, token?: string): Promise<Res> {
    if (this.#closed) return Promise.reject(fromServiceError(closedError()));
    return new Promise((resolve, reject) => {
      method(
        request,
        bearer(token),
        { deadline: Date.now() + this.#callTimeoutMs },
        (error, response) => error ? reject(fromServiceError(error)) : resolve(response),
      );
    });
  }

  /** Opens the calling device's Receive stream. */
  receive(token: string): ReceiveCall {
    return this.messaging.receive(bearer(token));
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#channel.close();
  }
}

function closedError(): Partial<grpc.ServiceError> {
  return { code: grpc.status.CANCELLED, details: "the client is closed" };
}
