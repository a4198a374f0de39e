/**
 * Opens the configured store and says, once, which backend it really runs on.
 *
 * Schema policy: services check the schema at startup and refuse to run on an unknown, newer
 * or (for CQL) older one; `deno task migrate` applies migrations. SQLite migrates on open by
 * default (embedded, one machine, one binary). A configured CQL cluster that cannot be reached
 * is a StoreUnavailableError: there is never a silent fallback to SQLite.
 */
import type { Logger } from "../platform/log.ts";
import type { StoreConfig } from "../store/config.ts";
import type { Store } from "../store/ports.ts";
import type { CqlTuning } from "../store/cql/cql_options.ts";
import { CQL_PORTS, SQLITE_PORTS } from "./store_ports.ts";

export interface OpenStoreOptions {
  /** Apply pending migrations. Default: true for SQLite, false for CQL (ops runs migrate). */
  migrate?: boolean;
  /** CQL consistency levels and, for `migrate`, keyspace replication. */
  cql?: CqlTuning;
}

export async function openStore(
  config: StoreConfig,
  log: Logger,
  opts: OpenStoreOptions = {},
): Promise<Store> {
  let store: Store & { applied: number[] };
  if (config.backend === "sqlite") {
    const { openSqliteStore } = await import("../store/sqlite/sqlite_store.ts");
    const sqlite = await openSqliteStore(config.path, {
      migrate: opts.migrate ?? true,
      ports: SQLITE_PORTS,
    });
    if (sqlite.privacy.tightened.length > 0) {
      log.warn("store files were readable by others: set to 0600", {
        files: sqlite.privacy.tightened,
      });
    }
    if (sqlite.privacy.looseDirectory !== undefined) {
      log.warn("the data directory is accessible to other users; make it 0700", {
        directory: sqlite.privacy.looseDirectory,
      });
    }
    store = sqlite;
  } else {
    // Loaded on demand so the embedded mode never loads the Cassandra driver.
    const { openCqlStore } = await import("../store/cql/cql_store.ts");
    store = await openCqlStore(config, {
      ...opts.cql,
      migrate: opts.migrate ?? false,
      ports: CQL_PORTS,
    });
  }
  log.info("store opened", {
    backend: store.info.backend,
    location: store.info.location,
    schemaVersion: store.info.schemaVersion,
    migrationsApplied: store.applied,
  });
  return store;
}
