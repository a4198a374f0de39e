/**
 * Opens the cluster store. Services never migrate implicitly here: the schema is checked and
 * anything but the known version is refused (run `deno task migrate`). `migrate: true` is for
 * the migrate task's callers and test helpers, which start from a fresh keyspace.
 */
import { buildPorts, type PortBuilders, type Store } from "../ports.ts";
import { checkKeyspace, type CqlTuning } from "./cql_options.ts";
import { checkCqlSchema, loadCqlMigrations, migrateCql } from "./cql_migrate.ts";
import type { CqlMailboxOptions } from "./cql_mailbox.ts";
import {
  connectCql,
  type CqlConfig,
  cqlLocation,
  type CqlSession,
  driverSession,
} from "./cql_session.ts";

export interface CqlOpenOptions extends CqlTuning, CqlMailboxOptions {
  /** Create the keyspace (needs `replication`) and apply pending migrations first. */
  migrate?: boolean;
  /** How each port is built on the session (services/runtime/store_ports.ts). */
  ports: PortBuilders<CqlConnection>;
}

/** What a CQL port is built on. */
export interface CqlConnection {
  session: CqlSession;
  keyspace: string;
  options: CqlMailboxOptions;
}

export interface CqlStore extends Store {
  /** Migrations applied by this open, oldest first. */
  readonly applied: number[];
}

export async function openCqlStore(
  config: CqlConfig,
  options: CqlOpenOptions,
): Promise<CqlStore> {
  checkKeyspace(config.keyspace);
  const applied = options.migrate ? (await migrateCql(config, options)).applied : [];
  const client = await connectCql(config, options);
  try {
    const session = driverSession(client);
    const schemaVersion = await checkCqlSchema(session, config, await loadCqlMigrations());
    const ports = await buildPorts(options.ports, {
      session,
      keyspace: config.keyspace,
      options,
    });
    let open = true;
    return {
      ...ports,
      info: { backend: "cql", location: cqlLocation(config), schemaVersion },
      applied,
      async ping() {
        await session.execute("SELECT release_version FROM system.local", []);
      },
      async close() {
        if (open) {
          open = false;
          await client.shutdown();
        }
      },
    };
  } catch (error) {
    await client.shutdown();
    throw error;
  }
}
