/**
 * Group commit for one SQLite connection. A commit costs far more than the rows it carries (WAL
 * frames for every touched page, index pages included), and a busy instance has dozens of sends
 * and acknowledgements in flight, so the write work queued during one event-loop turn runs in
 * one transaction. A piece that throws rolls the batch back, and every piece of it then runs in
 * a transaction of its own, so the failing piece rejects alone and the others commit. Pieces
 * must therefore report expected refusals as values and throw only on real failures (a
 * client-caused throw would make the whole batch run twice). Every promise settles only after
 * its commit, so a resolved write is as durable as with a transaction of its own.
 */
import type { DatabaseSync } from "node:sqlite";
import { setImmediate } from "node:timers";
import { immediate } from "./sqlite_tx.ts";

/** Most pieces of work in one transaction, so a flood never holds the write lock for long. */
export const WRITE_BATCH_MAX = 256;

interface Pending {
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export class WriteBatcher {
  #queue: Pending[] = [];
  #scheduled = false;
  /** Committed transactions and the pieces they carried, for tests and diagnostics. */
  readonly committed = { transactions: 0, pieces: 0 };

  constructor(private readonly db: DatabaseSync, private readonly maxBatch = WRITE_BATCH_MAX) {}

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
    let began = false;
    let values: unknown[];
    try {
      values = this.#transaction(() => {
        began = true;
        return batch.map((pending) => pending.work());
      }, batch.length);
    } catch (error) {
      if (!began) {
        // No transaction (the file is locked, or gone): nothing ran, and retrying piece by
        // piece would only wait for the same lock once per piece.
        for (const pending of batch) pending.reject(error);
        return;
      }
      // One piece threw (or the commit failed): nothing of the batch was kept. Each piece runs
      // again in a transaction of its own, so only the failing one fails.
      for (const pending of batch) {
        try {
          pending.resolve(this.#transaction(pending.work, 1));
        } catch (pieceError) {
          pending.reject(pieceError);
        }
      }
      return;
    }
    batch.forEach((pending, i) => pending.resolve(values[i]));
  }

  #transaction<T>(work: () => T, pieces: number): T {
    const result = immediate(this.db, work);
    this.committed.transactions += 1;
    this.committed.pieces += pieces;
    return result;
  }
}
