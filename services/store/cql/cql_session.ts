/**
 * The thin layer between the CQL adapter and cassandra-driver: connecting with a deadline,
 * and a small CqlSession interface (prepared statements, fixed consistency levels) that the
 * mailbox uses and tests can wrap to inject faults.
 */
import cassandra from "cassandra-driver";
import type { StoreConfig } from "../config.ts";
import { StoreUnavailableError } from "../errors.ts";
import type { CqlConsistency, CqlSerialConsistency, CqlTuning } from "./cql_options.ts";

export type CqlConfig = Extract<StoreConfig, { backend: "cql" }>;
export type CqlRow = Record<string, unknown>;

export interface CqlResult {
  rows: CqlRow[];
  /** False only for a lightweight transaction whose condition did not hold. */
  applied: boolean;
  /** Set when more rows follow (paged reads). */
  pageState?: string;
}

export interface CqlStatement {
  query: string;
  params: unknown[];
}

export interface CqlSession {
  execute(
    query: string,
    params: unknown[],
    page?: { fetchSize: number; pageState?: string },
  ): Promise<CqlResult>;
  /** A logged batch; with a condition it is one lightweight transaction on one partition. */
  batch(statements: CqlStatement[]): Promise<CqlResult>;
}

const REQUEST_TIMEOUT_MS = 12_000;

const CONSISTENCY: Record<CqlConsistency | CqlSerialConsistency, number> = {
  ONE: cassandra.types.consistencies.one,
  LOCAL_ONE: cassandra.types.consistencies.localOne,
  QUORUM: cassandra.types.consistencies.quorum,
  LOCAL_QUORUM: cassandra.types.consistencies.localQuorum,
  EACH_QUORUM: cassandra.types.consistencies.eachQuorum,
  ALL: cassandra.types.consistencies.all,
  SERIAL: cassandra.types.consistencies.serial,
  LOCAL_SERIAL: cassandra.types.consistencies.localSerial,
};

/** Where the cluster is, for logs and errors: contact points and keyspace, never credentials. */
export function cqlLocation(config: CqlConfig): string {
  return `${config.contactPoints.join(",")}/${config.keyspace}`;
}

function newClient(config: CqlConfig, tuning: CqlTuning, keyspace?: string): cassandra.Client {
  return new cassandra.Client({
    contactPoints: config.contactPoints,
    localDataCenter: config.localDataCenter,
    keyspace,
    credentials: config.username !== undefined
      ? { username: config.username, password: config.password ?? "" }
      : undefined,
    socketOptions: { connectTimeout: config.connectTimeoutMs, readTimeout: REQUEST_TIMEOUT_MS },
    encoding: { useBigIntAsLong: true, useUndefinedAsUnset: true },
    // Server-side write timestamps: rows written by lightweight transactions carry the
    // coordinator's Paxos timestamp, so a later plain DELETE (an ack) must be stamped by the
    // cluster's clock too, not by an application host whose clock may lag behind it.
    // The driver documents null for this; its typings omit it.
    policies: { timestampGeneration: null as unknown as undefined },
    queryOptions: {
      prepare: true,
      consistency: CONSISTENCY[tuning.consistency ?? "LOCAL_QUORUM"],
      serialConsistency: CONSISTENCY[tuning.serialConsistency ?? "LOCAL_SERIAL"],
    },
  });
}

/** The reasons the driver gives per host, e.g. "127.0.0.1:1: connect ECONNREFUSED". */
function describe(error: unknown): string {
  if (error instanceof cassandra.errors.NoHostAvailableError) {
    const inner = Object.entries(error.innerErrors ?? {}).map(([host, e]) =>
      `${host}: ${e instanceof Error ? e.message : String(e)}`
    );
    if (inner.length > 0) return inner.join("; ");
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * Connects within config.connectTimeoutMs or throws StoreUnavailableError naming the contact
 * points and the timeout. There is no fallback: a configured cluster must be there.
 */
export async function connectCql(
  config: CqlConfig,
  tuning: CqlTuning = {},
  keyspace?: string,
): Promise<cassandra.Client> {
  const client = newClient(config, tuning, keyspace);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${config.connectTimeoutMs} ms`)),
      config.connectTimeoutMs,
    );
  });
  const connecting = client.connect();
  connecting.catch(() => {}); // settled below or abandoned after the deadline
  try {
    await Promise.race([connecting, deadline]);
    return client;
  } catch (error) {
    await client.shutdown().catch(() => {});
    throw new StoreUnavailableError(
      `cannot reach the CQL cluster at ${config.contactPoints.join(", ")} (data center ` +
        `${config.localDataCenter}) within the ${config.connectTimeoutMs} ms connect timeout: ` +
        describe(error),
      { cause: error },
    );
  } finally {
    clearTimeout(timer);
  }
}

export function driverSession(client: cassandra.Client): CqlSession {
  return {
    async execute(query, params, page) {
      const result = await client.execute(query, params, {
        prepare: true,
        fetchSize: page?.fetchSize,
        pageState: page?.pageState,
      });
      return {
        rows: result.rows as unknown as CqlRow[],
        applied: result.wasApplied(),
        pageState: result.pageState ?? undefined,
      };
    },
    async batch(statements) {
      const result = await client.batch(statements, { prepare: true, logged: true });
      return { rows: (result.rows ?? []) as unknown as CqlRow[], applied: result.wasApplied() };
    },
  };
}
