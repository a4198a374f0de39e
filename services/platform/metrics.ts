/** Prometheus metrics: one registry per process, exposed over HTTP by ./http.ts. */

import client from "prom-client";

export interface Metrics {
  readonly registry: client.Registry;
  readonly grpcHandled: client.Counter<"service" | "method" | "code">;
  readonly grpcDuration: client.Histogram<"service" | "method">;
  readonly grpcInFlight: client.Gauge<"service" | "method">;
}

export function createMetrics(defaultLabels: Record<string, string> = {}): Metrics {
  const registry = new client.Registry();
  registry.setDefaultLabels(defaultLabels);
  return {
    registry,
    grpcHandled: new client.Counter({
      name: "guardyn_grpc_server_handled_total",
      help: "gRPC calls completed, by status code",
      labelNames: ["service", "method", "code"],
      registers: [registry],
    }),
    grpcDuration: new client.Histogram({
      name: "guardyn_grpc_server_handling_seconds",
      help: "gRPC call duration (unary) or stream lifetime",
      labelNames: ["service", "method"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
      registers: [registry],
    }),
    grpcInFlight: new client.Gauge({
      name: "guardyn_grpc_server_in_flight",
      help: "gRPC calls or streams currently open",
      labelNames: ["service", "method"],
      registers: [registry],
    }),
  };
}
