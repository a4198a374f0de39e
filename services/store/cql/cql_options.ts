/** CQL tuning beyond StoreConfig: consistency levels and keyspace replication (pure parsing). */

export const CQL_CONSISTENCIES = [
  "ONE",
  "LOCAL_ONE",
  "QUORUM",
  "LOCAL_QUORUM",
  "EACH_QUORUM",
  "ALL",
] as const;
export type CqlConsistency = typeof CQL_CONSISTENCIES[number];
export type CqlSerialConsistency = "SERIAL" | "LOCAL_SERIAL";

export type Replication =
  | { strategy: "SimpleStrategy"; replicationFactor: number }
  | { strategy: "NetworkTopologyStrategy"; dataCenters: Record<string, number> };

export interface CqlTuning {
  /** Reads and writes; default LOCAL_QUORUM. */
  consistency?: CqlConsistency;
  /** The Paxos phase of lightweight transactions; default LOCAL_SERIAL. */
  serialConsistency?: CqlSerialConsistency;
  /** Used only when migrating creates the keyspace. */
  replication?: Replication;
}

const REPLICATION_FACTOR_MAX = 9;
const DC_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const KEYSPACE = /^[a-z][a-z0-9_]{0,47}$/;

function factor(text: string, what: string): number {
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || n < 1 || n > REPLICATION_FACTOR_MAX) {
    throw new Error(`${what} must be a replication factor in 1..${REPLICATION_FACTOR_MAX}`);
  }
  return n;
}

/** Parses "SimpleStrategy:1" or "NetworkTopologyStrategy:dc1=3,dc2=3". */
export function parseReplication(text: string): Replication {
  const [strategy, spec = "", ...rest] = text.trim().split(":");
  if (rest.length > 0 || spec === "") {
    throw new Error(
      `CQL_REPLICATION must look like "SimpleStrategy:1" or "NetworkTopologyStrategy:dc1=3", ` +
        `got "${text}"`,
    );
  }
  if (strategy === "SimpleStrategy") {
    return { strategy, replicationFactor: factor(spec, "SimpleStrategy") };
  }
  if (strategy === "NetworkTopologyStrategy") {
    const dataCenters: Record<string, number> = {};
    for (const pair of spec.split(",")) {
      const [dc = "", rf = ""] = pair.split("=");
      if (!DC_NAME.test(dc)) throw new Error(`invalid data center name "${dc}" in CQL_REPLICATION`);
      if (dc in dataCenters) {
        throw new Error(`data center "${dc}" appears twice in CQL_REPLICATION`);
      }
      dataCenters[dc] = factor(rf, `data center "${dc}"`);
    }
    return { strategy, dataCenters };
  }
  throw new Error(
    `CQL_REPLICATION strategy must be SimpleStrategy or NetworkTopologyStrategy, got "${strategy}"`,
  );
}

/** The replication map of a CREATE KEYSPACE statement (inputs are validated above). */
export function replicationCql(replication: Replication): string {
  if (replication.strategy === "SimpleStrategy") {
    return `{'class': 'SimpleStrategy', 'replication_factor': ${replication.replicationFactor}}`;
  }
  const dcs = Object.entries(replication.dataCenters).map(([dc, rf]) => `'${dc}': ${rf}`);
  return `{'class': 'NetworkTopologyStrategy', ${dcs.join(", ")}}`;
}

/** Keyspace names are spliced into statements, so only plain lowercase identifiers pass. */
export function checkKeyspace(keyspace: string): string {
  if (!KEYSPACE.test(keyspace)) {
    throw new Error(
      `CQL keyspace "${keyspace}" must be a lowercase identifier: a letter, then up to 47 ` +
        "letters, digits or underscores",
    );
  }
  return keyspace;
}
