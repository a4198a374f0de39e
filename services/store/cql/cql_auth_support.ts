/**
 * Helpers of the CQL auth stores: byte conversion, bounded paging and fan-out, and
 * lightweight transactions whose outcome can be recovered after a timeout.
 */
import { Buffer } from "node:buffer";
import cassandra from "cassandra-driver";
import { sleep } from "../../platform/time.ts";
import { StoreUnavailableError } from "../errors.ts";
import type { CqlResult, CqlRow, CqlSession, CqlStatement } from "./cql_session.ts";

export const toBuffer = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** A copy, so a row never pins the driver's whole response frame in memory. */
export function toBytes(value: unknown): Uint8Array | undefined {
  return value === null || value === undefined ? undefined : new Uint8Array(value as Uint8Array);
}

/** A fresh token that marks a conditional write as ours. */
export const newToken = () => crypto.randomUUID();

/** Reads every row of a bounded query page by page; more than `maxRows` is a schema bug. */
export async function readAll(
  session: CqlSession,
  query: string,
  params: unknown[],
  maxRows: number,
  fetchSize = 1000,
): Promise<CqlRow[]> {
  const rows: CqlRow[] = [];
  let pageState: string | undefined;
  do {
    const page = await session.execute(query, params, { fetchSize, pageState });
    rows.push(...page.rows);
    if (rows.length > maxRows) {
      throw new Error(`a bounded read returned more than ${maxRows} rows: ${query}`);
    }
    pageState = page.pageState;
  } while (pageState);
  return rows;
}

/** Runs `work` over `items` with at most `limit` in flight; stops starting on the first error. */
export async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
}

const codes = cassandra.types.responseErrorCodes;
const TRANSIENT_CODES = new Set<number>([
  codes.unavailableException,
  codes.overloaded,
  codes.isBootstrapping,
  codes.writeTimeout,
  codes.readTimeout,
  codes.writeFailure,
]);

/** Errors after which the statement may or may not have been applied, or was not run at all. */
export function isTransient(error: unknown): boolean {
  if (error instanceof cassandra.errors.OperationTimedOutError) return true;
  if (error instanceof cassandra.errors.NoHostAvailableError) return true;
  if (error instanceof cassandra.errors.BusyConnectionError) return true;
  const code = (error as { code?: unknown }).code;
  return error instanceof cassandra.errors.ResponseError && typeof code === "number" &&
    TRANSIENT_CODES.has(code);
}

/** Attempts of one conditional write when its outcome is unknown (timeout under contention). */
const UNCERTAIN_ATTEMPTS = 4;

export interface Decision {
  /** True when this caller's write won (now, or in an earlier attempt that timed out). */
  won: boolean;
  /** The row that the losing condition saw (absent when the row does not exist). */
  row?: CqlRow;
}

/**
 * A lightweight transaction that carries a token unique to this caller. A timeout leaves its
 * outcome unknown (Cassandra reports contention that way), so it is simply run again: the
 * Paxos round of the retry first completes any earlier proposal, and a losing answer that
 * shows our own token (`mine`) means an earlier attempt won.
 */
export async function decide(
  what: string,
  run: () => Promise<CqlResult>,
  mine: (row: CqlRow) => boolean,
): Promise<Decision> {
  for (let attempt = 1;; attempt++) {
    try {
      const result = await run();
      const row = result.rows[0];
      if (result.applied) return { won: true };
      if (row && mine(row)) return { won: true, row };
      return { won: false, ...(row ? { row } : {}) };
    } catch (error) {
      if (!isTransient(error)) throw error;
      if (attempt >= UNCERTAIN_ATTEMPTS) {
        throw new StoreUnavailableError(
          `${what}: no answer from the cluster after ${attempt} attempts; retry`,
          { cause: error },
        );
      }
      await sleep(10 * attempt + Math.random() * 20 * attempt);
    }
  }
}

/** decide() for one statement. */
export function decideOne(
  session: CqlSession,
  what: string,
  query: string,
  params: unknown[],
  mine: (row: CqlRow) => boolean,
): Promise<Decision> {
  return decide(what, () => session.execute(query, params), mine);
}

/** decide() for a conditional batch on one partition. */
export function decideBatch(
  session: CqlSession,
  what: string,
  statements: CqlStatement[],
  mine: (row: CqlRow) => boolean,
): Promise<Decision> {
  return decide(what, () => session.batch(statements), mine);
}

let lastMicros = 0n;

/**
 * Write timestamps (microseconds) strictly increasing within this process, for tables whose
 * rows are deleted and then written again (a device's keys after a reinstall): the re-write
 * must win over the delete even when another coordinator stamps it.
 */
export function writeTimestamp(): bigint {
  const now = BigInt(Date.now()) * 1000n;
  lastMicros = now > lastMicros ? now : lastMicros + 1n;
  return lastMicros;
}
