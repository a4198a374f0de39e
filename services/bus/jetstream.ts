/**
 * NATS JetStream bus adapter.
 * - Wake-ups and device signals: core NATS publish/subscribe on wakeSubject() and
 *   signalSubject(): every instance subscribed receives (at most once).
 * - Events: published to the stream over `<subjectPrefix>.>` and acknowledged by JetStream
 *   (PubAck) before publish() resolves. The message id is a digest of the normalized event, so
 *   publishing an equal event again within the duplicate window (a caller's retry) stores it once.
 * - Consumers: durable pull consumers (see jetstream_consumer.ts).
 * The connection reconnects forever with exponential backoff; while it is down, publish() and
 * ping() fail at once with BusUnavailableError and consumption resumes after reconnecting.
 */

import { connect } from "@nats-io/transport-node";
import {
  DeliverPolicy,
  jetstream,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstreamManager,
} from "@nats-io/jetstream";
import {
  ClosedConnectionError,
  ConnectionError,
  type NatsConnection,
  NoRespondersError,
  RequestError,
  type Subscription as NatsSubscription,
  TimeoutError,
} from "@nats-io/nats-core";
import type { Bus, ConsumeOptions, EventDelivery, Subscription } from "./port.ts";
import {
  broadcastSubject,
  type BroadcastTopic,
  type BusEvent,
  checkBroadcastBody,
  decodeSignal,
  type DeviceSignal,
  encodeEvent,
  encodeSignal,
  EVENT_STREAM,
  EVENT_SUBJECT_PREFIX,
  type EventKind,
  eventSubject,
  signalSubject,
  validateEvent,
  wakeSubject,
} from "./subjects.ts";
import {
  checkConsumerName,
  checkKinds,
  consumerPolicy,
  type DeliveryPolicy,
  deliveryPolicy,
  retryDelayMs,
} from "./delivery.ts";
import {
  broadcastStreamConfig,
  checkStreamSettings,
  consumerConfig,
  ensureStream,
  STREAM_DEFAULTS,
  type StreamSettings,
  supportsMultipleFilters,
} from "./jetstream_topology.ts";
import { PullSession } from "./jetstream_consumer.ts";
import { withTimeout } from "./async_tools.ts";
import { BusClosedError, BusUnavailableError } from "./errors.ts";
import type { Logger } from "../platform/log.ts";

export interface JetStreamBusOptions {
  /** nats://host:port URLs. */
  servers: string[];
  /** Never logged. */
  token?: string;
  connectTimeoutMs: number;
  replicas: number;
  /** Stream name; tests use their own so runs do not interfere. */
  stream?: string;
  /** Event subjects are `<subjectPrefix>.<kind>`; must not overlap another stream's. */
  subjectPrefix?: string;
  retention?: Partial<
    Pick<StreamSettings, "maxAgeMs" | "maxBytes" | "maxMsgs" | "duplicateWindowMs">
  >;
  delivery?: Partial<DeliveryPolicy>;
  /** How long publish() and ping() wait for the server. */
  requestTimeoutMs?: number;
  /** Reconnect backoff bounds. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** How long close() waits for running handlers so their acks reach the server. */
  drainMs?: number;
  /** Client name shown in the server's monitoring. */
  clientName?: string;
  /** Subscriptions (wake-ups plus consumers) open at once on this bus. */
  maxSubscriptions?: number;
}

const DEFAULTS = {
  requestTimeoutMs: 5_000,
  reconnectMinMs: 250,
  reconnectMaxMs: 5_000,
  drainMs: 2_000,
  clientName: "guardyn",
  maxSubscriptions: 100_000,
} as const;

/** Server URLs without any user:password part, for messages and logs. */
export function displayServers(servers: readonly string[]): string[] {
  return servers.map((server) => server.replace(/\/\/[^@/]*@/, "//"));
}

/** Connects, checks JetStream, and creates or updates the event stream. */
export async function createJetStreamBus(
  options: JetStreamBusOptions,
  logger: Logger,
): Promise<Bus> {
  if (options.servers.length === 0) throw new Error("NATS servers list is empty");
  const shown = displayServers(options.servers);
  // Settings are checked before connecting: a typo should not look like an outage.
  const settings = checkStreamSettings({
    name: options.stream ?? EVENT_STREAM,
    subjectPrefix: options.subjectPrefix ?? EVENT_SUBJECT_PREFIX,
    replicas: options.replicas,
    ...STREAM_DEFAULTS,
    ...options.retention,
  });
  const policy = deliveryPolicy(options.delivery);
  const reconnect = {
    retryBaseMs: options.reconnectMinMs ?? DEFAULTS.reconnectMinMs,
    retryMaxMs: options.reconnectMaxMs ?? DEFAULTS.reconnectMaxMs,
  };
  let reconnectFailures = 0;

  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: options.servers,
      token: options.token,
      timeout: options.connectTimeoutMs,
      name: options.clientName ?? DEFAULTS.clientName,
      maxReconnectAttempts: -1,
      waitOnFirstConnect: false,
      reconnectTimeWait: reconnect.retryBaseMs,
      // Exponential backoff with jitter; reset once reconnected (see the status watch).
      reconnectDelayHandler: () => {
        reconnectFailures = Math.min(reconnectFailures + 1, 30);
        const delay = retryDelayMs(reconnectFailures, reconnect);
        return delay + Math.floor(Math.random() * delay * 0.2);
      },
    });
  } catch (error) {
    throw new BusUnavailableError(
      `NATS unreachable at ${shown.join(", ")} (connect timeout ${options.connectTimeoutMs} ms): ${
        messageOf(error)
      }`,
      shown,
      { cause: error },
    );
  }

  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
  try {
    const jsm = await jetstreamManager(nc, { timeout: options.connectTimeoutMs });
    await ensureStream(jsm, settings);
    const js = jetstream(nc, { timeout: requestTimeoutMs });
    return new JetStreamBus(nc, js, jsm, {
      logger,
      settings,
      policy,
      shown,
      requestTimeoutMs,
      drainMs: options.drainMs ?? DEFAULTS.drainMs,
      maxSubscriptions: options.maxSubscriptions ?? DEFAULTS.maxSubscriptions,
      onReconnected: () => reconnectFailures = 0,
    });
  } catch (error) {
    await nc.close().catch(() => undefined);
    if (isUnavailable(error)) {
      throw new BusUnavailableError(
        `JetStream unavailable at ${shown.join(", ")} (timeout ${options.connectTimeoutMs} ms): ${
          messageOf(error)
        }`,
        shown,
        { cause: error },
      );
    }
    throw error;
  }
}

interface BusSetup {
  logger: Logger;
  settings: StreamSettings;
  policy: DeliveryPolicy;
  shown: string[];
  requestTimeoutMs: number;
  drainMs: number;
  maxSubscriptions: number;
  onReconnected: () => void;
}

class JetStreamBus implements Bus {
  readonly info: Bus["info"];
  readonly #sessions = new Set<PullSession>();
  /** Core subscriptions: wake-ups and device signals. */
  readonly #wakes = new Set<NatsSubscription>();
  /** Broadcast listeners: each stops its ordered consumer. */
  readonly #broadcasts = new Set<() => Promise<void>>();
  readonly #statusWatch: Promise<void>;
  readonly #multipleFilters: boolean;
  #connected = true;
  #closed = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly setup: BusSetup,
  ) {
    this.info = { backend: "nats", location: setup.shown.join(",") };
    this.#multipleFilters = supportsMultipleFilters(nc.info?.version);
    this.#statusWatch = this.#watchConnection();
  }

  wake(accountId: string, deviceId: string): Promise<void> {
    try {
      this.#assertOpen();
      // While reconnecting the client buffers this; a late wake-up is harmless.
      this.nc.publish(wakeSubject(accountId, deviceId));
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async onWake(accountId: string, deviceId: string, handler: () => void): Promise<Subscription> {
    return await this.#listen(wakeSubject(accountId, deviceId), () => handler(), "wake-up");
  }

  signal(accountId: string, deviceId: string, signal: DeviceSignal): Promise<void> {
    try {
      this.#assertOpen();
      // Like wake-ups: buffered while reconnecting, at most once.
      this.nc.publish(signalSubject(accountId, deviceId), encodeSignal(signal));
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async onSignal(
    accountId: string,
    deviceId: string,
    handler: (signal: DeviceSignal) => void,
  ): Promise<Subscription> {
    return await this.#listen(
      signalSubject(accountId, deviceId),
      (data) => handler(decodeSignal(data)),
      "signal",
    );
  }

  /** A core NATS subscription whose handler errors are logged, never thrown into the client. */
  async #listen(
    subject: string,
    handler: (data: Uint8Array) => void,
    what: string,
  ): Promise<Subscription> {
    this.#assertOpen();
    this.#reserveSubscription();
    const { logger } = this.setup;
    const sub = this.nc.subscribe(subject, {
      callback: (error, message) => {
        if (error) return logger.warn(`${what} subscription error`, { error });
        try {
          handler(message.data);
        } catch (error) {
          logger.warn(`${what} handler failed`, { error });
        }
      },
    });
    this.#wakes.add(sub);
    // Make sure the server knows the interest before the caller relies on it.
    if (this.#connected) await this.#roundTrip().catch(() => undefined);
    return {
      unsubscribe: () => {
        if (this.#wakes.delete(sub)) {
          try {
            sub.unsubscribe();
          } catch {
            // Already closed with the connection.
          }
        }
        return Promise.resolve();
      },
    };
  }

  async broadcast(topic: BroadcastTopic, data: Uint8Array): Promise<void> {
    this.#assertOpen();
    checkBroadcastBody(data);
    const { shown, requestTimeoutMs, settings } = this.setup;
    if (!this.#connected) {
      throw new BusUnavailableError(
        `NATS connection to ${shown.join(", ")} is down (reconnecting); nothing broadcast`,
        shown,
      );
    }
    try {
      await this.js.publish(broadcastSubject(topic, settings.subjectPrefix), data, {
        timeout: requestTimeoutMs,
      });
    } catch (error) {
      if (isUnavailable(error)) {
        throw new BusUnavailableError(
          `JetStream at ${shown.join(", ")} did not take the broadcast: ${messageOf(error)}`,
          shown,
          { cause: error },
        );
      }
      throw new Error(`bus broadcast failed: ${messageOf(error)}`, { cause: error });
    }
  }

  async onBroadcast(
    topic: BroadcastTopic,
    handler: (data: Uint8Array) => void,
  ): Promise<Subscription> {
    this.#assertOpen();
    this.#reserveSubscription();
    const { settings, logger } = this.setup;
    // An ordered consumer: in order, recreated by the client after a reconnect from where it
    // stopped, so changes published meanwhile are not missed (within the retention).
    const consumer = await this.js.consumers.get(broadcastStreamConfig(settings).name, {
      filter_subjects: broadcastSubject(topic, settings.subjectPrefix),
      deliver_policy: DeliverPolicy.New,
    });
    const messages = await consumer.consume({
      callback: (message) => {
        try {
          handler(message.data);
        } catch (error) {
          logger.warn("broadcast handler failed", { error });
        }
      },
    });
    const stop = async () => {
      if (!this.#broadcasts.delete(stop)) return;
      await messages.close().catch(() => undefined);
    };
    this.#broadcasts.add(stop);
    return { unsubscribe: stop };
  }

  async publish(event: BusEvent): Promise<void> {
    this.#assertOpen();
    const normalized = validateEvent(event);
    const data = encodeEvent(normalized);
    const msgID = await messageId(data);
    const { shown, requestTimeoutMs, settings } = this.setup;
    if (!this.#connected) {
      throw new BusUnavailableError(
        `NATS connection to ${shown.join(", ")} is down (reconnecting); event not published`,
        shown,
      );
    }
    try {
      const ack = await this.js.publish(
        eventSubject(normalized.kind, settings.subjectPrefix),
        data,
        {
          msgID,
          timeout: requestTimeoutMs,
        },
      );
      if (ack.stream !== settings.name) {
        throw new Error(`event stored in stream ${ack.stream}, expected ${settings.name}`);
      }
    } catch (error) {
      if (isUnavailable(error)) {
        throw new BusUnavailableError(
          `JetStream at ${
            shown.join(", ")
          } did not acknowledge the event within ${requestTimeoutMs} ms: ${messageOf(error)}`,
          shown,
          { cause: error },
        );
      }
      throw new Error(`bus publish failed: ${messageOf(error)}`, { cause: error });
    }
  }

  async consume(
    consumer: string,
    kinds: EventKind[],
    handler: (delivery: EventDelivery) => Promise<void>,
    options: ConsumeOptions = {},
  ): Promise<Subscription> {
    this.#assertOpen();
    const name = checkConsumerName(consumer);
    const wanted = checkKinds(kinds);
    const { settings, logger, drainMs } = this.setup;
    const policy = consumerPolicy(this.setup.policy, options);
    this.#reserveSubscription();
    const session = new PullSession({
      js: this.js,
      jsm: this.jsm,
      stream: settings.name,
      config: consumerConfig(name, wanted, settings.subjectPrefix, policy, this.#multipleFilters),
      kinds: new Set(wanted),
      policy,
      handler,
      logger,
      drainMs,
    });
    try {
      await session.start();
    } catch (error) {
      throw new Error(`cannot start bus consumer ${name}: ${messageOf(error)}`, { cause: error });
    }
    this.#sessions.add(session);
    return {
      unsubscribe: async () => {
        if (this.#sessions.delete(session)) await session.stop();
      },
    };
  }

  async ping(): Promise<void> {
    this.#assertOpen();
    const { shown } = this.setup;
    if (!this.#connected) {
      throw new BusUnavailableError(`NATS connection to ${shown.join(", ")} is down`, shown);
    }
    await this.#roundTrip();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const sessions = [...this.#sessions];
    this.#sessions.clear();
    await Promise.all(sessions.map((session) => session.stop()));
    await Promise.all([...this.#broadcasts].map((stop) => stop()));
    this.#wakes.clear();
    // Let pending acks leave before the socket closes.
    if (this.#connected) await this.#roundTrip().catch(() => undefined);
    await this.nc.close().catch(() => undefined);
    await this.#statusWatch;
  }

  #roundTrip(): Promise<number> {
    const { shown, requestTimeoutMs } = this.setup;
    return withTimeout(this.nc.rtt(), requestTimeoutMs, () =>
      new BusUnavailableError(
        `NATS at ${shown.join(", ")} did not answer within ${requestTimeoutMs} ms`,
        shown,
      ));
  }

  async #watchConnection(): Promise<void> {
    const { logger } = this.setup;
    for await (const status of this.nc.status()) {
      switch (status.type) {
        case "disconnect":
          this.#connected = false;
          logger.warn("NATS disconnected; reconnecting", {
            server: displayServers([status.server])[0],
          });
          break;
        case "reconnect":
          this.#connected = true;
          this.setup.onReconnected();
          logger.info("NATS reconnected", { server: displayServers([status.server])[0] });
          break;
        case "error":
          logger.warn("NATS connection error", { error: status.error });
          break;
        case "staleConnection":
          logger.warn("NATS connection stale; reconnecting");
          break;
      }
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new BusClosedError();
  }

  #reserveSubscription(): void {
    const open = this.#sessions.size + this.#wakes.size + this.#broadcasts.size;
    if (open >= this.setup.maxSubscriptions) {
      throw new Error(`too many bus subscriptions (limit ${this.setup.maxSubscriptions})`);
    }
  }
}

/** Hex SHA-256 of the canonical encoding: equal events get equal ids. */
async function messageId(encoded: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(encoded)));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * Errors meaning "the server did not answer" (or JetStream is not serving yet, as while a
 * restarted server recovers its streams), as opposed to "the server said no".
 */
function isUnavailable(error: unknown): boolean {
  return error instanceof TimeoutError || error instanceof NoRespondersError ||
    error instanceof ClosedConnectionError || error instanceof ConnectionError ||
    error instanceof BusUnavailableError ||
    (error instanceof JetStreamApiError && error.status === 503) ||
    (error instanceof Error && error.name === "JetStreamNotEnabled") ||
    (error instanceof RequestError &&
      (error.isNoResponders() || error.cause instanceof TimeoutError));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
