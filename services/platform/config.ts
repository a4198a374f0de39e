/**
 * The configuration every service shares, from the environment: the domain and its public host
 * names, the listeners, logging, shutdown, tokens and the account-wide device limit. Each
 * service parses its own settings in `services/<name>/settings.ts`, and the store and bus parse
 * theirs beside their ports; the runtime reads them all with one `EnvReader`, so every problem
 * is reported together.
 */

import { type EnvReader } from "./env.ts";
import { corsOriginProblems } from "./cors.ts";
import type { LogLevel } from "./log.ts";
import { type Cidr, parseCidrs } from "./client_address.ts";

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

export interface PlatformConfig {
  /** The single source of every public host name. */
  domain: string;
  /** Public host names derived from `domain`. */
  hosts: PublicHosts;
  logLevel: LogLevel;
  grpc: { host: string; port: number; limits: GrpcLimits; listener: GrpcListener; workers: number };
  /** The gRPC-Web and Connect listener (Deno.serve): what the SDK and browsers use. */
  http: {
    host: string;
    port: number;
    tls?: { certFile: string; keyFile: string };
    /** Browser origins allowed to call the API (CORS); none by default. */
    corsOrigins: string[];
  };
  /** Proxies (the ingress) whose x-forwarded-for names the client: TRUSTED_PROXY_CIDRS. */
  trustedProxies: Cidr[];
  metrics: { host: string; port: number };
  /** How long a graceful shutdown waits for in-flight calls before cancelling them. */
  shutdownGraceMs: number;
  tokens: TokenConfig;
  accounts: AccountLimits;
}

/**
 * How native gRPC (grpc-js on node:http2) is served. `workers`: supervised gateway processes
 * share GRPC_PORT and forward to this instance's HTTP listener, so an nghttp2 abort
 * (denoland/deno#36788) costs one worker's open calls; `in-process`: grpc-js in this process
 * (an abort takes the instance down); `off`: no native gRPC.
 */
export const GRPC_LISTENERS = ["workers", "in-process", "off"] as const;
export type GrpcListener = (typeof GRPC_LISTENERS)[number];

/** Account rules more than one service relies on. */
export interface AccountLimits {
  /** Devices of one account: auth enforces it, messaging sizes a message's envelopes by it. */
  maxDevicesPerAccount: number;
}

export interface TokenConfig {
  /**
   * JSON key file for access tokens (see tokens.ts). Unset on the embedded store: a key file is
   * generated next to the SQLite file. Required with the cluster store.
   */
  keysFile: string | undefined;
  accessTtlSeconds: number;
  refreshTtlSeconds: number;
  /** A login's absolute lifetime across refreshes: then the password is needed again. */
  sessionMaxAgeSeconds: number;
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

const HOSTNAME = /^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$/;
const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

/** DOMAIN, lowercased and checked as a DNS name (a problem is recorded, not thrown). */
export function readDomain(read: EnvReader): string {
  const domain = read.string("DOMAIN", "localhost").toLowerCase();
  if (!HOSTNAME.test(domain)) {
    read.problems.push(`DOMAIN=${JSON.stringify(domain)} must be a DNS name such as example.org`);
  }
  return domain;
}

export function parsePlatformConfig(read: EnvReader): PlatformConfig {
  const domain = readDomain(read);
  const proxies = parseCidrs(read.list("TRUSTED_PROXY_CIDRS", []));
  read.problems.push(...proxies.problems);
  return {
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
      listener: read.oneOf("GRPC_LISTENER", GRPC_LISTENERS, "workers"),
      workers: read.int("GRPC_WORKERS", 2, 1, 16),
    },
    http: readHttpListener(read),
    trustedProxies: proxies.cidrs,
    metrics: {
      host: read.string("METRICS_HOST", "127.0.0.1"),
      port: read.int("METRICS_PORT", 9464, 0, 65535),
    },
    shutdownGraceMs: read.int("SHUTDOWN_GRACE_MS", 10_000, 0, 300_000),
    tokens: {
      keysFile: read.optional("TOKEN_KEYS_FILE"),
      accessTtlSeconds: read.int("ACCESS_TOKEN_TTL_SECONDS", 900, 30, 86_400),
      refreshTtlSeconds: read.int("REFRESH_TOKEN_TTL_SECONDS", 30 * 86_400, 3_600, 365 * 86_400),
      // The lower bound is low so tests can reach it; deployments keep days.
      sessionMaxAgeSeconds: read.int("SESSION_MAX_AGE_SECONDS", 90 * 86_400, 1, 3_650 * 86_400),
    },
    accounts: {
      maxDevicesPerAccount: read.int("MAX_DEVICES_PER_ACCOUNT", 10, 1, 100),
    },
  };
}

function readHttpListener(read: EnvReader): PlatformConfig["http"] {
  const certFile = read.optional("HTTP_TLS_CERT_FILE");
  const keyFile = read.optional("HTTP_TLS_KEY_FILE");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    read.problems.push("HTTP_TLS_CERT_FILE and HTTP_TLS_KEY_FILE are set together or not at all");
  }
  const corsOrigins = read.list("HTTP_CORS_ORIGINS", []);
  read.problems.push(...corsOriginProblems(corsOrigins));
  return {
    host: read.string("HTTP_HOST", "127.0.0.1"),
    port: read.int("HTTP_PORT", 8080, 0, 65535),
    corsOrigins,
    ...(certFile !== undefined && keyFile !== undefined ? { tls: { certFile, keyFile } } : {}),
  };
}
