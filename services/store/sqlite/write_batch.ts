/**
 * Group commit for one SQLite connection. A commit costs far more than the rows it carries (WAL
 * frames for every touched page, index pages included), and a busy instance has dozens of sends
 * and acknowledgements in flight, so the write work queued during one event-loop turn runs in
 * one transaction. Each piece runs inside its own savepoint: a piece that throws is rolled back
 * alone and rejects alone; the others commit. Every promise settles only after the commit, so a
 * resolved write is as durable as with a transaction of its own.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { setImmediate } from "node:timers";

/** Most pieces of work in one transaction, so a flood never holds the write lock for long. */
export const WRITE_BATCH_MAX = 256;

interface Pending {
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export class WriteBatcher {
  readonly #begin: StatementSync;
  readonly #commit: StatementSync;
  readonly #rollback: StatementSync;
  readonly #savepoint: StatementSync;
  readonly #release: StatementSync;
  readonly #rollbackToSavepoint: StatementSync;
  #queue: Pending[] = [];
  #scheduled = false;
  /** Committed transactions and the pieces they carried, for tests and diagnostics. */
  readonly committed = { transactions: 0, pieces: 0 };

  constructor(db: DatabaseSync, private readonly maxBatch = WRITE_BATCH_MAX) {
    this.#begin = db.prepare("BEGIN IMMEDIATE");
    this.#commit = db.prepare("COMMIT");
    this.#rollback = db.prepare("ROLLBACK");
    this.#savepoint = db.prepare("SAVEPOINT piece");
    this.#release = db.prepare("RELEASE piece");
    this.#rollbackToSavepoint = db.prepare("ROLLBACK TO piece");
  }

  /** Runs synchronous `work` in the next group transaction; settles after its commit. */
  run<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // After this turn's I/O callbacks: every request parsed from the same reads joins.
        setImmediate(() => this.#scheduledFlush());
      }
    });
  }

  /** Runs everything queued now, e.g. before the connection closes. */
  flushAll(): void {
    while (this.#queue.length > 0) this.#flush();
  }

  #scheduledFlush(): void {
    this.#scheduled = false;
    this.#flush();
    if (this.#queue.length > 0) {
      this.#scheduled = true;
      setImmediate(() => this.#scheduledFlush());
    }
  }

  #flush(): void {
    if (this.#queue.length === 0) return;
    const batch = this.#queue.slice(0, this.maxBatch);
    this.#queue = this.#queue.slice(batch.length);
    const outcomes = this.#runAll(batch);
    if (outcomes instanceof Error) {
      for (const pending of batch) pending.reject(outcomes);
      return;
    }
    batch.forEach((pending, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) pending.resolve(outcome.value);
      else pending.reject(outcome.error);
    });
  }

  /** The outcome of each piece, or the error that failed the whole transaction. */
  #runAll(
    batch: Pending[],
  ): Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> | Error {
    try {
      this.#begin.run();
    } catch (error) {
      return asError(error);
    }
    try {
      const outcomes = batch.map((pending) => this.#runPiece(pending.work));
      this.#commit.run();
      this.committed.transactions += 1;
      this.committed.pieces += batch.length;
      return outcomes;
    } catch (error) {
      try {
        this.#rollback.run();
      } catch { /* the transaction is already gone */ }
      return asError(error);
    }
  }

  #runPiece(work: () => unknown): { ok: true; value: unknown } | { ok: false; error: unknown } {
    this.#savepoint.run();
    let outcome: { ok: true; value: unknown } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, value: work() };
    } catch (error) {
      // Undo only this piece; a failure of the rollback itself fails the whole transaction.
      this.#rollbackToSavepoint.run();
      outcome = { ok: false, error };
    }
    this.#release.run();
    return outcome;
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
