/**
 * Deno's built-in OpenTelemetry export, switched on by environment (docs/OPERATIONS.md): a dev
 * server exports a span per RPC, named after it and carrying the request id, to an OTLP
 * collector (here a tiny one on loopback that records what it receives as OTLP/JSON).
 */
import { join } from "node:path";
import { assert } from "../tests/assert.ts";
import { ROOT } from "./kube_test_kit.ts";
import { waitUntil } from "../tests/support/wait.ts";
import { startLocalServer } from "./smoke_start.ts";

Deno.test({
  name: "otel: OTEL_DENO=true exports a span per RPC carrying its request id",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const received: unknown[] = [];
    const collector = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (r) => {
        if (new URL(r.url).pathname === "/v1/traces") received.push(await r.json());
        else await r.body?.cancel();
        return new Response("{}", { headers: { "content-type": "application/json" } });
      },
    );
    const server = await startLocalServer(Deno.execPath(), [
      "run",
      "-A",
      join(ROOT, "services", "auth", "main.ts"),
    ], {
      OTEL_DENO: "true",
      OTEL_SERVICE_NAME: "guardyn-auth",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.addr.port}`,
    });
    try {
      const api = server.api;
      const requestId = `otel-${crypto.randomUUID()}`;
      // A Connect unary call with an empty message: refused as bad input, which is an RPC too.
      const response = await fetch(`http://${api}/guardyn.v1.AuthService/Login`, {
        method: "POST",
        headers: { "content-type": "application/proto", "x-request-id": requestId },
        body: new Uint8Array(),
      });
      await response.body?.cancel();
      assert(
        response.headers.get("x-request-id") === requestId,
        `${response.status} ${JSON.stringify([...response.headers])}`,
      );
      const spans = () =>
        JSON.stringify(received).includes(requestId) &&
        JSON.stringify(received).includes("/guardyn.v1.AuthService/Login");
      await waitUntil(spans, "the RPC's span at the collector", 30_000);
    } finally {
      await server.stop();
      await collector.shutdown();
    }
  },
});
