/**
 * `deno task migrate`: brings the configured store's schema up to this build's version.
 * Services only check the schema and refuse to start on a mismatch; this task applies.
 * SQLite: applies pending migrations to the file. CQL: creates the keyspace if missing (with
 * CQL_REPLICATION) and applies pending .cql migrations; rerunning is a no-op.
 */
import type { StoreConfig } from "../services/store/config.ts";
import { parseReplication, type Replication } from "../services/store/cql/cql_options.ts";
import { SQLITE_PORTS } from "../services/runtime/store_ports.ts";

export type Env = Record<string, string | undefined>;

export interface MigrateSettings {
  store: StoreConfig;
  /** Needed only to create a missing CQL keyspace. */
  replication?: Replication;
}

/**
 * Reads the store settings with the services' names and defaults. Kept in one function so
 * it can be swapped for the shared parser in services/platform/config.ts.
 */
export function readMigrateSettings(env: Env): MigrateSettings {
  const backend = env.STORE_BACKEND ?? "sqlite";
  if (backend === "sqlite") {
    return { store: { backend, path: env.SQLITE_PATH ?? "./.guardyn/guardyn.db" } };
  }
  if (backend !== "cql") {
    throw new Error(`STORE_BACKEND must be sqlite or cql, got "${backend}"`);
  }
  const contactPoints = (env.CQL_CONTACT_POINTS ?? "").split(",").map((p) => p.trim())
    .filter((p) => p !== "");
  if (contactPoints.length === 0) {
    throw new Error("CQL_CONTACT_POINTS is required when STORE_BACKEND=cql (host:port,...)");
  }
  const { CQL_USERNAME: username, CQL_PASSWORD: password } = env;
  if ((username === undefined) !== (password === undefined)) {
    throw new Error("CQL_USERNAME and CQL_PASSWORD must be set together");
  }
  const timeout = Number(env.CQL_CONNECT_TIMEOUT_MS ?? "10000");
  if (!Number.isInteger(timeout) || timeout < 100 || timeout > 300_000) {
    throw new Error("CQL_CONNECT_TIMEOUT_MS must be an integer in 100..300000");
  }
  return {
    store: {
      backend,
      contactPoints,
      localDataCenter: env.CQL_LOCAL_DC ?? "datacenter1",
      keyspace: env.CQL_KEYSPACE ?? "guardyn",
      ...(username !== undefined && password !== undefined ? { username, password } : {}),
      connectTimeoutMs: timeout,
    },
    replication: env.CQL_REPLICATION ? parseReplication(env.CQL_REPLICATION) : undefined,
  };
}

export async function migrate(settings: MigrateSettings, print: (line: string) => void) {
  const { store } = settings;
  if (store.backend === "sqlite") {
    const { openSqliteStore } = await import("../services/store/sqlite/sqlite_store.ts");
    const opened = await openSqliteStore(store.path, { migrate: true, ports: SQLITE_PORTS });
    for (const version of opened.applied) print(`applied SQLite migration ${version}`);
    print(`SQLite file ${store.path} at schema version ${opened.info.schemaVersion}`);
    await opened.close();
    return;
  }
  const { checkKeyspace } = await import("../services/store/cql/cql_options.ts");
  const { migrateCql } = await import("../services/store/cql/cql_migrate.ts");
  checkKeyspace(store.keyspace);
  const result = await migrateCql(store, { replication: settings.replication }, print);
  print(`CQL keyspace ${store.keyspace} at schema version ${result.version}`);
}

if (import.meta.main) {
  try {
    await migrate(readMigrateSettings(Deno.env.toObject()), (line) => console.log(line));
  } catch (error) {
    console.error(`migrate: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(1);
  }
}
