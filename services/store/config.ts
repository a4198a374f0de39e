/** Store backend selection, parsed from the environment by services/platform/config.ts. */
export type StoreConfig =
  | { backend: "sqlite"; /** SQLite file path; its folder is created if missing. */ path: string }
  | {
    backend: "cql";
    /** host:port pairs of ScyllaDB/Cassandra nodes. */
    contactPoints: string[];
    localDataCenter: string;
    keyspace: string;
    username?: string;
    password?: string;
    /** How long to wait for the cluster before failing startup. */
    connectTimeoutMs: number;
  };
