// Builds a cassandra-driver client for the single CI node (SimpleSnitch names its DC datacenter1).
import cassandra from "cassandra-driver";
import type { Endpoint } from "./endpoint.ts";

const CONNECT_TIMEOUT_MS = 2_000;
const REQUEST_TIMEOUT_MS = 10_000;

export function ciClient(endpoint: Endpoint): cassandra.Client {
  return new cassandra.Client({
    contactPoints: [`${endpoint.host}:${endpoint.port}`],
    localDataCenter: "datacenter1",
    socketOptions: { connectTimeout: CONNECT_TIMEOUT_MS, readTimeout: REQUEST_TIMEOUT_MS },
    // Open pool connections lazily: a probe or a check needs only one.
    pooling: { warmup: false },
  });
}
