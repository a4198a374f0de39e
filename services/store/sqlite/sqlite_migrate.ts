/** Reads and applies SQLite schema migrations (the schema_migrations table is the ledger). */
import type { DatabaseSync } from "node:sqlite";
import { SchemaMismatchError } from "../errors.ts";
import type { MigrationRef } from "../schema.ts";
import { SQLITE_MIGRATIONS, type SqliteMigration } from "./migrations.ts";

const LEDGER_DDL = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at_ms INTEGER NOT NULL
)`;

/** Migrations recorded in the file; [] for a new, empty file. */
export function readAppliedMigrations(db: DatabaseSync, path: string): MigrationRef[] {
  const tables = db
    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    .all()
    .map((row) => String(row.name));
  if (!tables.includes("schema_migrations")) {
    if (tables.length > 0) {
      throw new SchemaMismatchError(
        `SQLite file ${path} has tables (${tables.slice(0, 5).join(", ")}) but no ` +
          "schema_migrations table: it is not a Guardyn store, refusing to use it",
      );
    }
    return [];
  }
  return db
    .prepare("SELECT version, name FROM schema_migrations ORDER BY version")
    .all()
    .map((row) => ({ version: Number(row.version), name: String(row.name) }));
}

/**
 * Applies each migration with its ledger row in one transaction, so a crash leaves no half.
 * The ledger is re-checked inside the write lock: two processes opening a new file at once
 * apply each migration once.
 */
export function applySqliteMigrations(db: DatabaseSync, pending: MigrationRef[]): number[] {
  const done: number[] = [];
  for (const ref of pending) {
    const migration = SQLITE_MIGRATIONS.find((m): m is SqliteMigration =>
      m.version === ref.version
    );
    if (!migration) throw new Error(`no SQLite migration ${ref.version}`);
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(LEDGER_DDL);
      const already = db.prepare("SELECT 1 FROM schema_migrations WHERE version = ?")
        .get(migration.version);
      if (!already) {
        db.exec(migration.sql);
        db.prepare("INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)")
          .run(migration.version, migration.name, Date.now());
        done.push(migration.version);
      }
      db.exec("COMMIT");
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
  }
  return done;
}
