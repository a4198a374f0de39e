/**
 * The deployment topology without Kubernetes: every catalog service runs as its own process
 * (as in its pod) with the environment the rendered local overlay gives it, on real ScyllaDB-
 * compatible CQL and NATS JetStream (started by `deno task test`), with the permissions that
 * `deno task build` compiles into the binaries. Then the verify checks run against them: the
 * message crosses processes through the shared store and the bus. Only the addresses differ
 * from a pod's environment (the secrets are samples, which the test servers do not check).
 */

import { assert, assertEquals } from "../tests/assert.ts";
import { clusterEnv } from "../tests/support/platform.ts";
import { RUNTIME_PERMISSIONS } from "./build.ts";
import { runtimeEnv } from "../services/runtime/grpc_gateway.ts";
import { containerEnv, find, serviceDeployments } from "./kube_checks.ts";
import { catalog, render, ROOT } from "./kube_test_kit.ts";
import { verifyDeployment } from "./verify_checks.ts";
import type { Endpoint } from "./verify_checks.ts";
import { freePort, waitForPort as listensWithin } from "../tests/support/net.ts";
import { NO_SANITIZERS } from "../tests/support/wait.ts";
import { s3VariablesFromEnv } from "../services/store/blob_config.ts";

async function waitForPort(port: number, child: Deno.ChildProcess, what: string) {
  if (await listensWithin(port, 60_000)) return;
  child.kill("SIGKILL");
  throw new Error(`${what} did not listen on ${port} within 60 s`);
}

Deno.test({
  name: "verify: one process per service with the manifests' environment, on CQL and NATS",
  ...NO_SANITIZERS,
  fn: async () => {
    const specs = await catalog();
    const { manifests } = await render("local");
    assertEquals(serviceDeployments(manifests).length, specs.length);
    const dir = await Deno.makeTempDir({ prefix: "guardyn-pods-" });
    const backends = await clusterEnv(dir);
    const children: Deno.ChildProcess[] = [];
    try {
      const endpoints = new Map<string, Endpoint>();
      for (const spec of specs) {
        const deployment = find(manifests, "Deployment", spec.name) as
          | { spec: { template: { spec: { containers: unknown[] } } } }
          | undefined;
        assert(deployment, spec.name);
        // What the pod's container sees: its ConfigMap and Secret keys (sample secret values).
        const pod = containerEnv(manifests, deployment.spec.template.spec.containers[0]);
        assertEquals(pod.problems, []);
        const grpcPort = freePort();
        const httpPort = freePort();
        const metricsPort = freePort();
        const env: Record<string, string> = {
          ...pod.env,
          CQL_CONTACT_POINTS: backends.CQL_CONTACT_POINTS!,
          CQL_KEYSPACE: backends.CQL_KEYSPACE!,
          NATS_URL: backends.NATS_URL!,
          TOKEN_KEYS_FILE: backends.TOKEN_KEYS_FILE!,
          GRPC_HOST: "127.0.0.1",
          GRPC_PORT: String(grpcPort),
          HTTP_HOST: "127.0.0.1",
          HTTP_PORT: String(httpPort),
          METRICS_HOST: "127.0.0.1",
          METRICS_PORT: String(metricsPort),
          LOG_LEVEL: "warn",
          // The pod's S3 is the in-cluster gateway; here the one deno task test started.
          ...(spec.secrets.includes("s3") ? s3VariablesFromEnv() : {}),
        };
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            // As compiled, except that the gateway workers are started with deno, not /app.
            ...RUNTIME_PERMISSIONS.map((flag) =>
              flag.startsWith("--allow-run=") ? `--allow-run=${Deno.execPath()}` : flag
            ),
            `${ROOT}/services/${spec.name}/main.ts`,
          ],
          // Only the pod's variables, plus what Deno itself needs to find its caches.
          env: { ...runtimeEnv(), ...env },
          clearEnv: true,
          stdout: "null",
          stderr: "inherit",
        }).spawn();
        children.push(child);
        await waitForPort(grpcPort, child, spec.name);
        endpoints.set(spec.name, {
          grpc: `127.0.0.1:${grpcPort}`,
          metrics: `http://127.0.0.1:${metricsPort}`,
        });
      }
      const results = await verifyDeployment({ specs, endpoints });
      const failed = results.filter((r) => !r.ok);
      assertEquals(failed, [], JSON.stringify(failed, null, 2));
      assert(results.some((r) => r.name === "messaging: send to the other device and receive it"));
      assert(results.some((r) => r.name === "auth: /readyz"));
    } finally {
      for (const child of children) {
        try {
          child.kill("SIGTERM");
        } catch { /* already gone */ }
      }
      const statuses = await Promise.all(children.map((child) => child.status));
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      // Graceful shutdown on SIGTERM, as Kubernetes stops a pod.
      assertEquals(statuses.map((s) => s.code), children.map(() => 0));
    }
  },
});
