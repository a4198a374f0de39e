/** Bus backend selection, parsed from the environment (BUS_BACKEND, NATS_*). */

import type { EnvReader } from "../platform/env.ts";

export type BusConfig =
  | { backend: "memory" }
  | {
    backend: "nats";
    /** nats://host:port URLs. */
    servers: string[];
    /** Optional credentials; never logged. */
    token?: string;
    connectTimeoutMs: number;
    /** JetStream stream replicas (1 for a single server, 3 in a cluster). */
    replicas: number;
    /** Event stream name and subject prefix; default GUARDYN_EVENTS on guardyn.events. */
    stream?: string;
    subjectPrefix?: string;
  };

const NATS_STREAM = /^[A-Za-z0-9_-]{1,64}$/;
const NATS_SUBJECT_PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){0,7}$/;

export function parseBusConfig(read: EnvReader): BusConfig {
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

/** The bus configuration for startup logs, without any credential. */
export function describeBusConfig(config: BusConfig): Record<string, unknown> {
  return config.backend === "memory"
    ? { backend: "memory" }
    : { backend: "nats", servers: config.servers };
}
