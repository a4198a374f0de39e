/**
 * The transport: one connection to one Guardyn API address shared by every service client,
 * unary calls as promises with a deadline and the bearer token, and every failure translated
 * into a GuardynClientError.
 *
 * Two wire protocols, the same calls:
 * - "web" (default): gRPC-Web over `fetch` to the API's HTTP listener (HTTP_PORT). In Deno it
 *   runs HTTP/2 (prior knowledge on plaintext) with full-duplex streams; in a browser `fetch` is
 *   half duplex, so Receive becomes ReceiveEvents + Acknowledge calls (`halfDuplex`).
 * - "grpc": native gRPC with grpc-js to GRPC_PORT (for comparisons and native-only setups).
 */

import * as grpc from "@grpc/grpc-js";
import {
  AuthServiceClient,
  AuthServiceService,
  DirectoryServiceClient,
  DirectoryServiceService,
  KeyDirectoryServiceClient,
  KeyDirectoryServiceService,
} from "../proto/gen/guardyn/v1/auth.ts";
import {
  GroupServiceClient,
  GroupServiceService,
  MessagingServiceClient,
  MessagingServiceService,
  type ReceiveRequest,
  type ReceiveResponse,
} from "../proto/gen/guardyn/v1/messaging.ts";
import { fromServiceError } from "./errors.ts";
import { MediaServiceClient, MediaServiceService } from "../proto/gen/guardyn/v1/media.ts";
import { PresenceServiceClient, PresenceServiceService } from "../proto/gen/guardyn/v1/presence.ts";
import {
  NotificationServiceClient,
  NotificationServiceService,
} from "../proto/gen/guardyn/v1/notification.ts";
import { HalfDuplexReceive } from "./half_duplex_receive.ts";
import { denoHttpClient, webServiceClient } from "./web_rpc.ts";

export type WireProtocol = "web" | "grpc";

export interface TransportOptions {
  /** "host:port" of the Guardyn API (HTTP_PORT for "web", GRPC_PORT for "grpc"). */
  address: string;
  /** TLS with the system roots (production) or plaintext (local development). Default: plaintext. */
  tls?: boolean;
  /** Deadline of one unary call. */
  callTimeoutMs?: number;
  /** Default "web". */
  protocol?: WireProtocol;
  /**
   * Use only half-duplex calls (no bidirectional stream): the default in browsers, where
   * `fetch` cannot read a response while still sending the request.
   */
  halfDuplex?: boolean;
}

/** The fullest overload of a generated unary method: TypeScript infers Req/Res from it. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (error: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

/** What the receiver needs of a Receive stream, whichever form serves it. */
export interface ReceiveCall {
  on(event: "data", listener: (response: ReceiveResponse) => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
  on(event: "status", listener: (status: grpc.StatusObject) => void): unknown;
  write(request: ReceiveRequest): unknown;
  /** Half-closes the request side: the server then ends the stream. */
  end(): unknown;
  cancel(): void;
}

const DEFAULT_CALL_TIMEOUT_MS = 30_000;

export function bearer(token: string | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

/** True in a browser (or any runtime whose fetch is half duplex). */
export function fetchIsHalfDuplex(): boolean {
  return typeof Deno === "undefined";
}

export class Transport {
  readonly address: string;
  readonly protocol: WireProtocol;
  readonly halfDuplex: boolean;
  readonly auth: InstanceType<typeof AuthServiceClient>;
  readonly keys: InstanceType<typeof KeyDirectoryServiceClient>;
  readonly directory: InstanceType<typeof DirectoryServiceClient>;
  readonly messaging: InstanceType<typeof MessagingServiceClient>;
  readonly groups: InstanceType<typeof GroupServiceClient>;
  readonly media: InstanceType<typeof MediaServiceClient>;
  readonly notifications: InstanceType<typeof NotificationServiceClient>;
  readonly presence: InstanceType<typeof PresenceServiceClient>;
  readonly #close: () => void;
  /** The mailbox stream's own messaging client (web), on a connection of its own. */
  readonly #streams: InstanceType<typeof MessagingServiceClient>;
  readonly #callTimeoutMs: number;
  #closed = false;

  constructor(options: TransportOptions) {
    if (!/^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$/.test(options.address)) {
      throw new TypeError(
        `server address must be host:port, got ${JSON.stringify(options.address)}`,
      );
    }
    this.address = options.address;
    this.protocol = options.protocol ?? "web";
    this.halfDuplex = options.halfDuplex ?? (this.protocol === "web" && fetchIsHalfDuplex());
    this.#callTimeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    if (this.protocol === "web") {
      const baseUrl = `${options.tls ? "https" : "http"}://${options.address}`;
      const httpClient = denoHttpClient(baseUrl);
      const web = { baseUrl, ...(httpClient ? { httpClient } : {}) };
      // Method for method the grpc-js client shapes (web_rpc.ts), so call sites do not change.
      this.auth = webServiceClient(AuthServiceService, web) as unknown as typeof this.auth;
      this.keys = webServiceClient(KeyDirectoryServiceService, web) as unknown as typeof this.keys;
      this.directory = webServiceClient(
        DirectoryServiceService,
        web,
      ) as unknown as typeof this.directory;
      this.messaging = webServiceClient(
        MessagingServiceService,
        web,
      ) as unknown as typeof this.messaging;
      this.groups = webServiceClient(GroupServiceService, web) as unknown as typeof this.groups;
      this.media = webServiceClient(MediaServiceService, web) as unknown as typeof this.media;
      this.notifications = webServiceClient(
        NotificationServiceService,
        web,
      ) as unknown as typeof this.notifications;
      this.presence = webServiceClient(
        PresenceServiceService,
        web,
      ) as unknown as typeof this.presence;
      // Deno's fetch sets no TCP_NODELAY: an ack written on the Receive stream would hold back
      // the next call on the same connection for a delayed ACK (about 40 ms, measured). The
      // stream gets its own connection, so sends never queue behind acks.
      const streamClient = denoHttpClient(baseUrl);
      this.#streams = webServiceClient(MessagingServiceService, {
        baseUrl,
        ...(streamClient ? { httpClient: streamClient } : {}),
      }) as unknown as typeof this.messaging;
      this.#close = () => {
        httpClient?.close();
        streamClient?.close();
      };
      return;
    }
    const credentials = options.tls
      ? grpc.credentials.createSsl()
      : grpc.credentials.createInsecure();
    // A channel of our own (no process-wide subchannel pool): closing it really closes the
    // connection, and two SDK clients in one process never share one.
    const channel = new grpc.Channel(options.address, credentials, {
      "grpc.use_local_subchannel_pool": 1,
      // No channelz debug service in a client: its per-call bookkeeping is pure overhead.
      "grpc.enable_channelz": 0,
      "grpc.max_receive_message_length": 8 * 1024 * 1024,
    });
    const shared = { channelOverride: channel };
    this.auth = new AuthServiceClient(options.address, credentials, shared);
    this.keys = new KeyDirectoryServiceClient(options.address, credentials, shared);
    this.directory = new DirectoryServiceClient(options.address, credentials, shared);
    this.messaging = new MessagingServiceClient(options.address, credentials, shared);
    this.groups = new GroupServiceClient(options.address, credentials, shared);
    this.media = new MediaServiceClient(options.address, credentials, shared);
    this.notifications = new NotificationServiceClient(options.address, credentials, shared);
    this.presence = new PresenceServiceClient(options.address, credentials, shared);
    this.#streams = this.messaging;
    this.#close = () => channel.close();
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

  /** Opens the calling device's mailbox stream (Receive, or its half-duplex form). */
  receive(token: string): ReceiveCall {
    if (this.halfDuplex) return new HalfDuplexReceive(this, token);
    return this.#streams.receive(bearer(token));
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#close();
  }
}

function closedError(): Partial<grpc.ServiceError> {
  return { code: grpc.status.CANCELLED, details: "the client is closed" };
}
