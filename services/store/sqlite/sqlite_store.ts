/**
 * Opens the embedded store: one SQLite file via node:sqlite.
 *
 * Migrating on open is the default here: the embedded store runs on one machine with one
 * binary, so there is no fleet of older/newer processes to coordinate and no operator step to
 * forget. `migrate: false` turns it into a check that refuses an older file, like the CQL store.
 */
import { DatabaseSync } from "node:sqlite";
import { dirname } from "node:path";
import {
  ensurePrivateDirectory,
  ensurePrivateFile,
  type PrivacyReport,
} from "../../platform/private_files.ts";
import { StoreUnavailableError } from "../errors.ts";
import { buildPorts, type PortBuilders, type Store, type StorePorts } from "../ports.ts";
import { behindError, latestVersion, planSchema } from "../schema.ts";
import { SQLITE_MIGRATIONS } from "./migrations.ts";
import { applySqliteMigrations, readAppliedMigrations } from "./sqlite_migrate.ts";

/** How long a writer waits for another process's write lock before SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5_000;

export interface SqliteOpenOptions {
  /** Apply pending migrations (default true for the embedded store). */
  migrate?: boolean;
  /** How each port is built on the database (services/runtime/store_ports.ts). */
  ports: PortBuilders<DatabaseSync>;
}

export interface SqliteStore extends Store {
  /** Migrations applied by this open, oldest first. */
  readonly applied: number[];
  /** Files this open set to 0600, and a data directory others can access, if any. */
  readonly privacy: PrivacyReport;
  /** The connection settings that matter for durability and concurrency, for diagnostics. */
  pragmas(): Record<string, unknown>;
}

const REPORTED_PRAGMAS = ["journal_mode", "synchronous", "busy_timeout", "foreign_keys"];

export async function openSqliteStore(
  path: string,
  options: SqliteOpenOptions,
): Promise<SqliteStore> {
  const privacy: PrivacyReport = { tightened: [] };
  const db = await openDatabase(path, privacy);
  try {
    const where = `SQLite file ${path}`;
    const known = SQLITE_MIGRATIONS.map(({ version, name }) => ({ version, name }));
    const plan = planSchema(where, readAppliedMigrations(db, path), known);
    let applied: number[] = [];
    if (plan.state === "behind") {
      if (options.migrate === false) throw behindError(where, plan.version, latestVersion(known));
      applied = applySqliteMigrations(db, plan.pending);
    }
    const ports = await buildPorts(options.ports, db);
    return sqliteStore(db, ports, path, latestVersion(known), applied, privacy);
  } catch (error) {
    db.close();
    throw error;
  }
}

/** The database and the WAL and shared-memory files SQLite keeps beside it. */
const databaseFiles = (path: string) => [path, `${path}-wal`, `${path}-shm`];

async function openDatabase(path: string, privacy: PrivacyReport): Promise<DatabaseSync> {
  try {
    if (path !== ":memory:") {
      // SQLite gives its WAL and shm files the database file's mode: create that one 0600.
      await ensurePrivateDirectory(dirname(path), privacy);
      for (const [i, file] of databaseFiles(path).entries()) {
        await ensurePrivateFile(file, privacy, { create: i === 0 });
      }
    }
    const db = new DatabaseSync(path);
    // WAL: readers never block the writer; NORMAL sync is durable across process crashes and
    // loses at most the last commits on power loss, the usual trade-off for WAL. 16 MiB of
    // page cache keeps the hot mailbox indexes in memory.
    db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS};
      PRAGMA foreign_keys = ON;
      PRAGMA cache_size = -16384;
    `);
    return db;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new StoreUnavailableError(`cannot open SQLite file ${path}: ${reason}`, {
      cause: error,
    });
  }
}

function sqliteStore(
  db: DatabaseSync,
  ports: StorePorts,
  path: string,
  schemaVersion: number,
  applied: number[],
  privacy: PrivacyReport,
): SqliteStore {
  let open = true;
  return {
    ...ports,
    info: { backend: "sqlite", location: path, schemaVersion },
    applied,
    privacy,
    pragmas() {
      const entries = REPORTED_PRAGMAS.map((name) => {
        const row = db.prepare(`PRAGMA ${name}`).get() ?? {};
        return [name, Object.values(row)[0]];
      });
      return Object.fromEntries(entries);
    },
    ping() {
      db.prepare("SELECT 1").get();
      return Promise.resolve();
    },
    close() {
      if (open) {
        open = false;
        // Writes already accepted (group commit) commit before the file closes.
        for (const port of Object.values(ports)) {
          (port as { flushPendingWrites?: () => void }).flushPendingWrites?.();
        }
        db.close();
      }
      return Promise.resolve();
    },
  };
}
