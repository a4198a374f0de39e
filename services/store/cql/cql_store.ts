/**
 * Opens the cluster store. Services never migrate implicitly here: the schema is checked and
 * anything but the known version is refused (run `deno task migrate`). `migrate: true` is for
 * the migrate task's callers and test helpers, which start from a fresh keyspace.
 */
import type { Store } from "../ports.ts";
import { checkKeyspace, type CqlTuning } from "./cql_options.ts";
import { checkCqlSchema, loadCqlMigrations, migrateCql } from "./cql_migrate.ts";
import { CqlMailbox, type CqlMailboxOptions } from "./cql_mailbox.ts";
import { cqlAuthStores } from "./cql_auth.ts";
import { connectCql, type CqlConfig, cqlLocation, driverSession } from "./cql_session.ts";

export interface CqlOpenOptions extends CqlTuning, CqlMailboxOptions {
  /** Create the keyspace (needs `replication`) and apply pending migrations first. */
  migrate?: boolean;
}

export interface CqlStore extends Store {
  /** Migrations applied by this open, oldest first. */
  readonly applied: number[];
}

export async function openCqlStore(
  config: CqlConfig,
  options: CqlOpenOptions = {},
): Promise<CqlStore> {
  checkKeyspace(config.keyspace);
  const applied = options.migrate ? (await migrateCql(config, options)).applied : [];
  const client = await connectCql(config, options);
  try {
    const session = driverSession(client);
    const schemaVersion = await checkCqlSchema(session, config, await loadCqlMigrations());
    let open = true;
    return {
      info: { backend: "cql", location: cqlLocation(config), schemaVersion },
      mailbox: new CqlMailbox(session, config.keyspace, options),
      auth: cqlAuthStores(session, config.keyspace),
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
