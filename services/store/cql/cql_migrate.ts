/**
 * CQL schema versioning: migrations are the numbered .cql files in ./migrations, the ledger is
 * the keyspace's schema_migrations table. Services only check (checkCqlSchema); `deno task
 * migrate` and the test helpers apply (migrateCql).
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SchemaMismatchError } from "../errors.ts";
import { behindError, latestVersion, type MigrationRef, planSchema } from "../schema.ts";
import { type CqlTuning, replicationCql } from "./cql_options.ts";
import {
  addedColumn,
  type CqlMigration,
  orderMigrations,
  parseMigrationFileName,
  splitCqlStatements,
} from "./cql_script.ts";
import { connectCql, type CqlConfig, cqlLocation, type CqlSession } from "./cql_session.ts";

const MIGRATIONS_DIR = fileURLToPath(new URL("./migrations/", import.meta.url));

const LEDGER_DDL = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version int PRIMARY KEY,
  name text,
  applied_at timestamp
)`;

export async function loadCqlMigrations(dir = MIGRATIONS_DIR): Promise<CqlMigration[]> {
  const migrations: CqlMigration[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile || !entry.name.endsWith(".cql")) continue;
    const ref = parseMigrationFileName(entry.name);
    if (!ref) {
      throw new Error(`CQL migration file ${entry.name} is not named like 0001_lowercase_name.cql`);
    }
    const text = await Deno.readTextFile(join(dir, entry.name));
    migrations.push({ ...ref, statements: splitCqlStatements(text, entry.name) });
  }
  return orderMigrations(migrations);
}

export interface CqlSchemaState {
  keyspaceExists: boolean;
  applied: MigrationRef[];
}

export async function readCqlSchema(session: CqlSession, keyspace: string) {
  const ks = await session.execute(
    "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?",
    [keyspace],
  );
  if (ks.rows.length === 0) return { keyspaceExists: false, applied: [] };
  const ledger = await session.execute(
    "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
    [keyspace, "schema_migrations"],
  );
  if (ledger.rows.length === 0) return { keyspaceExists: true, applied: [] };
  const rows = await session.execute(`SELECT version, name FROM ${keyspace}.schema_migrations`, []);
  const applied = rows.rows.map((r) => ({ version: Number(r.version), name: String(r.name) }));
  return { keyspaceExists: true, applied };
}

const refs = (migrations: CqlMigration[]) =>
  migrations.map(({ version, name }) => ({ version, name }));

/** The startup check of a service: returns the schema version or refuses to run. */
export async function checkCqlSchema(
  session: CqlSession,
  config: CqlConfig,
  known: CqlMigration[],
): Promise<number> {
  const where = `CQL keyspace ${config.keyspace} at ${config.contactPoints.join(",")}`;
  const knownVersion = latestVersion(known);
  const state = await readCqlSchema(session, config.keyspace);
  if (!state.keyspaceExists) {
    throw new SchemaMismatchError(
      `${where} does not exist (this binary knows schema version ${knownVersion}): ` +
        "run `deno task migrate` to create and migrate it",
    );
  }
  const plan = planSchema(where, state.applied, refs(known));
  if (plan.state === "current") return plan.version;
  if (plan.version === 0) {
    throw new SchemaMismatchError(
      `${where} is not migrated (schema version 0, this binary knows version ${knownVersion}): ` +
        "run `deno task migrate`",
    );
  }
  throw behindError(where, plan.version, knownVersion);
}

export interface CqlMigrateResult {
  createdKeyspace: boolean;
  applied: number[];
  version: number;
}

/**
 * Creates the keyspace if missing (replication is required then) and applies pending
 * migrations in order, recording each in schema_migrations. Every statement is idempotent,
 * so rerunning after an interruption is safe. Run one migrate at a time per cluster.
 */
export async function migrateCql(
  config: CqlConfig,
  tuning: CqlTuning,
  report: (line: string) => void = () => {},
): Promise<CqlMigrateResult> {
  const known = await loadCqlMigrations();
  const keyspace = config.keyspace;
  const admin = await connectCql(config, tuning);
  let createdKeyspace = false;
  try {
    const exists = await admin.execute(
      "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?",
      [keyspace],
      { prepare: true },
    );
    if (exists.rows.length === 0) {
      if (!tuning.replication) {
        throw new Error(
          `keyspace ${keyspace} does not exist and no replication was given to create it ` +
            '(set CQL_REPLICATION, e.g. "NetworkTopologyStrategy:dc1=3")',
        );
      }
      await admin.execute(
        `CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = ` +
          replicationCql(tuning.replication),
      );
      createdKeyspace = true;
      report(`created keyspace ${keyspace} with ${replicationCql(tuning.replication)}`);
    }
  } finally {
    await admin.shutdown();
  }
  const client = await connectCql(config, tuning, keyspace);
  try {
    await client.execute(LEDGER_DDL);
    const ledger = await client.execute("SELECT version, name FROM schema_migrations");
    const applied = ledger.rows.map((r) => ({ version: Number(r.version), name: String(r.name) }));
    const plan = planSchema(`CQL keyspace ${cqlLocation(config)}`, applied, refs(known));
    const done: number[] = [];
    for (const ref of plan.state === "behind" ? plan.pending : []) {
      const migration = known.find((m) => m.version === ref.version)!;
      for (const statement of migration.statements) {
        if (await columnExists(client, keyspace, addedColumn(statement))) continue;
        await client.execute(statement);
      }
      await client.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
        [migration.version, migration.name, new Date()],
        { prepare: true },
      );
      done.push(migration.version);
      const label = `${String(migration.version).padStart(4, "0")}_${migration.name}`;
      report(`applied ${label} (${migration.statements.length} statements)`);
    }
    const version = latestVersion(known);
    if (done.length === 0) report(`keyspace ${keyspace} already at schema version ${version}`);
    return { createdKeyspace, applied: done, version };
  } finally {
    await client.shutdown();
  }
}

/** True when `added` names a column the table already has (a rerun of its migration). */
async function columnExists(
  client: Awaited<ReturnType<typeof connectCql>>,
  keyspace: string,
  added: { table: string; column: string } | undefined,
): Promise<boolean> {
  if (!added) return false;
  const found = await client.execute(
    `SELECT column_name FROM system_schema.columns
     WHERE keyspace_name = ? AND table_name = ? AND column_name = ?`,
    [keyspace, added.table, added.column],
    { prepare: true },
  );
  return found.rows.length > 0;
}
