/**
 * Write transactions of the SQLite stores. node:sqlite is synchronous, so the work inside never
 * yields to the event loop: concurrent async calls in this process cannot interleave within a
 * decision, and BEGIN IMMEDIATE (with the store's busy_timeout) serialises other processes.
 */
import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";

export type Row = Record<string, SQLInputValue>;

interface TransactionStatements {
  begin: StatementSync;
  commit: StatementSync;
  rollback: StatementSync;
}

/** Prepared once per connection: db.exec would parse them on every transaction. */
const prepared = new WeakMap<DatabaseSync, TransactionStatements>();

function statementsOf(db: DatabaseSync): TransactionStatements {
  let statements = prepared.get(db);
  if (!statements) {
    statements = {
      begin: db.prepare("BEGIN IMMEDIATE"),
      commit: db.prepare("COMMIT"),
      rollback: db.prepare("ROLLBACK"),
    };
    prepared.set(db, statements);
  }
  return statements;
}

/** Runs `work` in a BEGIN IMMEDIATE transaction; `work` must not be async. */
export function immediate<T>(db: DatabaseSync, work: () => T): T {
  const { begin, commit, rollback } = statementsOf(db);
  begin.run();
  try {
    const result = work();
    commit.run();
    return result;
  } catch (error) {
    rollback.run();
    throw error;
  }
}

/** A BLOB column as a Uint8Array of its own (never a view into a shared buffer). */
export function blob(value: SQLInputValue | undefined): Uint8Array | undefined {
  return value === null || value === undefined ? undefined : new Uint8Array(value as Uint8Array);
}
