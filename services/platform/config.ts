/**
 * Typed configuration from the environment, validated once at startup.
 *
 * Pure: `parseConfig` takes the environment as a plain record so tests need no process state.
 * Every problem is collected and reported together in one `ConfigError`, so an operator fixes
 * a deployment in one round instead of one variable per restart.
 */

import type { BusConfig } from "../bus/config.ts";
import type { StoreConfig } from "../store/config.ts";
import type { LogLevel } from "./log.ts";

export type Env = Record<string, string | undefined>;

export interface GrpcLimits {
  /** Largest request message accepted, in bytes; larger ones get RESOURCE_EXHAUSTED. */
  maxRequestBytes: number;
  /** Largest response message sent, in bytes. */
  maxResponseBytes: number;
  /** Unary calls without a client deadline (or a longer one) are cut at this many ms. */
  maxUnaryDeadlineMs: number;
  /** Concurrent streams per HTTP/2 connection. */
  maxConcurrentStreams: number;
}

export interface Config {
  /** The single source of every public host name. */
  domain: string;
  /** Public host names derived from `domain`. */
  hosts: PublicHosts;
  logLevel: LogLevel;
  grpc: { host: string; port: number; limits: GrpcLimits };
  metrics: { host: string; port: number };
  store: StoreConfig;
  bus: BusConfig;
  /** How long a graceful shutdown waits for in-flight calls before cancelling them. */
  shutdownGraceMs: number;
  tokens: TokenConfig;
  auth: AuthLimits;
  messaging: MessagingSettings;
}

/** Limits and timings of the messaging service (services/messaging). */
export interface MessagingSettings {
  /** Ciphertext bytes of one envelope. */
  envelopeMaxBytes: number;
  /** Envelopes per SendMessage list (recipient devices; sync copies get one less). */
  maxEnvelopesPerRequest: number;
  /** How long an unacknowledged envelope waits in a mailbox. */
  mailboxTtlSeconds: number;
  /** SendMessage calls per sender device. */
  sendBurst: number;
  sendPerSecond: number;
  /** An open stream re-reads its mailbox after this long without activity (a lost wake-up). */
  pollIntervalMs: number;
  /** How often expired envelopes are purged. */
  purgeIntervalMs: number;
  /** Receive streams open at once on one instance. */
  maxStreamsPerInstance: number;
  /** Receive streams a device may open per minute (a reconnect loop stops here). */
  streamOpensPerMinute: number;
  /** How long an account's device list may be reused by SendMessage (0: read every time). */
  directoryCacheMs: number;
  /** SendMessage calls handled at once per instance; more are refused as UNAVAILABLE. */
  maxConcurrentSends: number;
  /** SendStream streams one device may hold open at once. */
  maxSendStreamsPerDevice: number;
  /** SendStream streams open at once on one instance. */
  maxSendStreamsPerInstance: number;
}

export interface TokenConfig {
  /**
   * JSON key file for access tokens (see tokens.ts). Unset on the embedded store: a key file is
   * generated next to the SQLite file. Required with the cluster store.
   */
  keysFile: string | undefined;
  accessTtlSeconds: number;
  refreshTtlSeconds: number;
}

export interface AuthLimits {
  maxDevicesPerAccount: number;
  /** Failed logins allowed per account and per client address before rate limiting. */
  loginFailuresBurst: number;
  loginFailuresPerMinute: number;
  /** Login attempts (failed or not) per client address. */
  loginAttemptsBurst: number;
  loginAttemptsPerMinute: number;
  /** Registrations and linking sessions per client address. */
  registrationBurst: number;
  registrationsPerMinute: number;
  /** Bundle fetches per (requester, target device). */
  prekeyFetchBurst: number;
  prekeyFetchPerMinute: number;
  maxOneTimePrekeysPerDevice: number;
  maxKeyPackagesPerDevice: number;
  /** Keys or key packages per upload call. */
  maxKeysPerUpload: number;
}

export interface PublicHosts {
  /** gRPC API endpoint for clients. */
  api: string;
  /** TURN/STUN relay for calls. */
  turn: string;
}

export function publicHosts(domain: string): PublicHosts {
  return { api: `api.${domain}`, turn: `turn.${domain}` };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

const HOSTNAME = /^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$/;
const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

/** Reads variables, recording every problem instead of throwing on the first. */
class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  string(name: string, fallback: string): string {
    const value = this.env[name]?.trim();
    return value === undefined || value === "" ? fallback : value;
  }

  optional(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const value = this.string(name, fallback);
    if ((allowed as readonly string[]).includes(value)) return value as T;
    this.problems.push(`${name}=${JSON.stringify(value)} must be one of: ${allowed.join(", ")}`);
    return fallback;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.optional(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!/^-?\d+$/.test(raw) || value < min || value > max) {
      this.problems.push(`${name}=${JSON.stringify(raw)} must be an integer in [${min}, ${max}]`);
      return fallback;
    }
    return value;
  }

  list(name: string, fallback: string[]): string[] {
    const raw = this.optional(name);
    if (raw === undefined) return fallback;
    return raw.split(",").map((item) => item.trim()).filter((item) => item !== "");
  }
}

function parseStore(read: EnvReader): StoreConfig {
  const backend = read.oneOf("STORE_BACKEND", ["sqlite", "cql"] as const, "sqlite");
  if (backend === "sqlite") {
    return { backend, path: read.string("SQLITE_PATH", "./.guardyn/guardyn.db") };
  }
  const contactPoints = read.list("CQL_CONTACT_POINTS", []);
  if (contactPoints.length === 0) {
    read.problems.push("CQL_CONTACT_POINTS is required when STORE_BACKEND=cql (host:port,...)");
  }
  for (const point of contactPoints) {
    if (!/^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$/.test(point)) {
      read.problems.push(`CQL_CONTACT_POINTS entry ${JSON.stringify(point)} must be host:port`);
    }
  }
  const keyspace = read.string("CQL_KEYSPACE", "guardyn");
  if (!/^[a-z][a-z0-9_]{0,47}$/.test(keyspace)) {
    read.problems.push(`CQL_KEYSPACE=${JSON.stringify(keyspace)} must match [a-z][a-z0-9_]{0,47}`);
  }
  const username = read.optional("CQL_USERNAME");
  const password = read.optional("CQL_PASSWORD");
  if ((username === undefined) !== (password === undefined)) {
    read.problems.push("CQL_USERNAME and CQL_PASSWORD must be set together");
  }
  return {
    backend,
    contactPoints,
    localDataCenter: read.string("CQL_LOCAL_DC", "datacenter1"),
    keyspace,
    ...(username !== undefined && password !== undefined ? { username, password } : {}),
    connectTimeoutMs: read.int("CQL_CONNECT_TIMEOUT_MS", 10_000, 100, 300_000),
  };
}

const NATS_STREAM = /^[A-Za-z0-9_-]{1,64}$/;
const NATS_SUBJECT_PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){0,7}$/;

function parseBus(read: EnvReader): BusConfig {
  const backend = read.oneOf("BUS_BACKEND", ["memory", "nats"] as const, "memory");
  if (backend === "memory") return { backend };
  const servers = read.list("NATS_URL", []);
  if (servers.length === 0) {
    read.problems.push("NATS_URL is required when BUS_BACKEND=nats (nats://host:port,...)");
  }
  for (const server of servers) {
    if (!/^(nats|tls):\/\/[^\s/]+:\d{1,5}$/.test(server)) {
      read.problems.push(`NATS_URL entry ${JSON.stringify(server)} must be nats://host:port`);
    }
  }
  const token = read.optional("NATS_TOKEN");
  const stream = read.optional("NATS_STREAM");
  if (stream !== undefined && !NATS_STREAM.test(stream)) {
    read.problems.push(`NATS_STREAM=${JSON.stringify(stream)} must be 1..64 chars of A-Za-z0-9_-`);
  }
  const subjectPrefix = read.optional("NATS_SUBJECT_PREFIX");
  if (subjectPrefix !== undefined && !NATS_SUBJECT_PREFIX.test(subjectPrefix)) {
    read.problems.push(
      `NATS_SUBJECT_PREFIX=${
        JSON.stringify(subjectPrefix)
      } must be dot-separated A-Za-z0-9_- tokens`,
    );
  }
  return {
    backend,
    servers,
    ...(token !== undefined ? { token } : {}),
    connectTimeoutMs: read.int("NATS_CONNECT_TIMEOUT_MS", 5_000, 100, 300_000),
    replicas: read.int("NATS_REPLICAS", 1, 1, 5),
    ...(stream !== undefined ? { stream } : {}),
    ...(subjectPrefix !== undefined ? { subjectPrefix } : {}),
  };
}

function parseMessaging(read: EnvReader): MessagingSettings {
  return {
    envelopeMaxBytes: read.int("MESSAGING_ENVELOPE_MAX_BYTES", 96 * 1024, 1024, 256 * 1024),
    maxEnvelopesPerRequest: read.int("MESSAGING_MAX_ENVELOPES_PER_REQUEST", 10, 1, 100),
    mailboxTtlSeconds: read.int("MESSAGING_MAILBOX_TTL_SECONDS", 30 * 86_400, 60, 90 * 86_400),
    sendBurst: read.int("MESSAGING_SEND_BURST", 50, 1, 1_000_000),
    sendPerSecond: read.int("MESSAGING_SEND_PER_SECOND", 20, 1, 1_000_000),
    pollIntervalMs: read.int("MESSAGING_POLL_INTERVAL_MS", 15_000, 100, 600_000),
    purgeIntervalMs: read.int("MESSAGING_PURGE_INTERVAL_MS", 60_000, 100, 86_400_000),
    maxStreamsPerInstance: read.int("MESSAGING_MAX_STREAMS", 50_000, 1, 1_000_000),
    streamOpensPerMinute: read.int("MESSAGING_STREAM_OPENS_PER_MINUTE", 30, 1, 100_000),
    directoryCacheMs: read.int("MESSAGING_DIRECTORY_CACHE_MS", 1_000, 0, 60_000),
    maxConcurrentSends: read.int("MESSAGING_MAX_CONCURRENT_SENDS", 1_000, 1, 100_000),
    maxSendStreamsPerDevice: read.int("MESSAGING_MAX_SEND_STREAMS_PER_DEVICE", 2, 1, 64),
    maxSendStreamsPerInstance: read.int("MESSAGING_MAX_SEND_STREAMS", 10_000, 1, 1_000_000),
  };
}

export function parseConfig(env: Env): Config {
  const read = new EnvReader(env);
  const domain = read.string("DOMAIN", "localhost").toLowerCase();
  if (!HOSTNAME.test(domain)) {
    read.problems.push(`DOMAIN=${JSON.stringify(domain)} must be a DNS name such as example.org`);
  }
  const config: Config = {
    domain,
    hosts: publicHosts(domain),
    logLevel: read.oneOf("LOG_LEVEL", LOG_LEVELS, "info"),
    grpc: {
      host: read.string("GRPC_HOST", "127.0.0.1"),
      port: read.int("GRPC_PORT", 50051, 0, 65535),
      limits: {
        maxRequestBytes: read.int(
          "GRPC_MAX_REQUEST_BYTES",
          4 * 1024 * 1024,
          1024,
          64 * 1024 * 1024,
        ),
        maxResponseBytes: read.int(
          "GRPC_MAX_RESPONSE_BYTES",
          4 * 1024 * 1024,
          1024,
          64 * 1024 * 1024,
        ),
        maxUnaryDeadlineMs: read.int("GRPC_MAX_DEADLINE_MS", 30_000, 100, 600_000),
        maxConcurrentStreams: read.int("GRPC_MAX_CONCURRENT_STREAMS", 1000, 1, 100_000),
      },
    },
    metrics: {
      host: read.string("METRICS_HOST", "127.0.0.1"),
      port: read.int("METRICS_PORT", 9464, 0, 65535),
    },
    store: parseStore(read),
    bus: parseBus(read),
    shutdownGraceMs: read.int("SHUTDOWN_GRACE_MS", 10_000, 0, 300_000),
    tokens: {
      keysFile: read.optional("TOKEN_KEYS_FILE"),
      accessTtlSeconds: read.int("ACCESS_TOKEN_TTL_SECONDS", 900, 30, 86_400),
      refreshTtlSeconds: read.int("REFRESH_TOKEN_TTL_SECONDS", 30 * 86_400, 3_600, 365 * 86_400),
    },
    auth: {
      maxDevicesPerAccount: read.int("MAX_DEVICES_PER_ACCOUNT", 10, 1, 100),
      loginFailuresBurst: read.int("LOGIN_FAILURES_BURST", 5, 1, 1_000),
      loginFailuresPerMinute: read.int("LOGIN_FAILURES_PER_MINUTE", 5, 1, 10_000),
      loginAttemptsBurst: read.int("LOGIN_ATTEMPTS_BURST", 30, 1, 100_000),
      loginAttemptsPerMinute: read.int("LOGIN_ATTEMPTS_PER_MINUTE", 30, 1, 100_000),
      registrationBurst: read.int("REGISTRATION_BURST", 10, 1, 100_000),
      registrationsPerMinute: read.int("REGISTRATIONS_PER_MINUTE", 10, 1, 100_000),
      prekeyFetchBurst: read.int("PREKEY_FETCH_BURST", 20, 1, 10_000),
      prekeyFetchPerMinute: read.int("PREKEY_FETCH_PER_MINUTE", 60, 1, 100_000),
      maxOneTimePrekeysPerDevice: read.int("MAX_ONE_TIME_PREKEYS_PER_DEVICE", 500, 10, 10_000),
      maxKeyPackagesPerDevice: read.int("MAX_KEY_PACKAGES_PER_DEVICE", 200, 10, 10_000),
      maxKeysPerUpload: read.int("MAX_KEYS_PER_UPLOAD", 100, 1, 1_000),
    },
    messaging: parseMessaging(read),
  };
  if (config.messaging.maxEnvelopesPerRequest < config.auth.maxDevicesPerAccount) {
    read.problems.push(
      `MESSAGING_MAX_ENVELOPES_PER_REQUEST=${config.messaging.maxEnvelopesPerRequest} must be at ` +
        `least MAX_DEVICES_PER_ACCOUNT=${config.auth.maxDevicesPerAccount}: a message needs one ` +
        "envelope per device",
    );
  }
  if (config.store.backend === "cql" && config.tokens.keysFile === undefined) {
    read.problems.push(
      "TOKEN_KEYS_FILE is required with STORE_BACKEND=cql: every instance must share the signing keys",
    );
  }
  if (read.problems.length > 0) throw new ConfigError(read.problems);
  return config;
}

/** Describes the configuration for startup logs, without any credential. */
export function describeConfig(config: Config): Record<string, unknown> {
  const store = config.store.backend === "sqlite"
    ? { backend: "sqlite", path: config.store.path }
    : {
      backend: "cql",
      contactPoints: config.store.contactPoints,
      keyspace: config.store.keyspace,
    };
  const bus = config.bus.backend === "memory"
    ? { backend: "memory" }
    : { backend: "nats", servers: config.bus.servers };
  return {
    domain: config.domain,
    grpc: `${config.grpc.host}:${config.grpc.port}`,
    metrics: `${config.metrics.host}:${config.metrics.port}`,
    store,
    bus,
  };
}
