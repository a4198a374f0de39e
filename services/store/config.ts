/** Store backend selection, parsed from the environment (STORE_BACKEND, SQLITE_PATH, CQL_*). */

import type { EnvReader } from "../platform/env.ts";

export type StoreConfig =
  | { backend: "sqlite"; /** SQLite file path; its folder is created if missing. */ path: string }
  | {
    backend: "cql";
    /** host:port pairs of ScyllaDB/Cassandra nodes. */
    contactPoints: string[];
    localDataCenter: string;
    keyspace: string;
    username?: string;
    password?: string;
    /** How long to wait for the cluster before failing startup. */
    connectTimeoutMs: number;
  };

/** Where the embedded database lives when SQLITE_PATH is not set. */
export const DEFAULT_SQLITE_PATH = "./.guardyn/guardyn.db";

export function parseStoreConfig(read: EnvReader): StoreConfig {
  const backend = read.oneOf("STORE_BACKEND", ["sqlite", "cql"] as const, "sqlite");
  if (backend === "sqlite") {
    return { backend, path: read.string("SQLITE_PATH", DEFAULT_SQLITE_PATH) };
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

/** The store configuration for startup logs, without any credential. */
export function describeStoreConfig(config: StoreConfig): Record<string, unknown> {
  return config.backend === "sqlite"
    ? { backend: "sqlite", path: config.path }
    : { backend: "cql", contactPoints: config.contactPoints, keyspace: config.keyspace };
}
