import { assert, assertEquals } from "../tests/assert.ts";
import { startPlatform } from "../tests/support/platform.ts";
import { CATALOG } from "../services/runtime/catalog.ts";
import { loadCatalog, repoRootFromHere } from "./kube_catalog.ts";
import { healthStatuses, throwawayUsername, verifyDeployment } from "./verify_checks.ts";
import { ingressAddress, parsePortForward, readyDeployments } from "./verify.ts";
import { parseK3dConfig } from "./kube_cli.ts";
import { NO_SANITIZERS } from "../tests/support/wait.ts";

const root = repoRootFromHere();

Deno.test({
  name: "verify: every check passes against auth and messaging, and the accounts are deleted",
  ...NO_SANITIZERS,
  fn: async () => {
    const specs = loadCatalog();
    // verify speaks native gRPC (what a port-forward to a pod reaches): the gateway workers.
    const running = await startPlatform(CATALOG.map((m) => m.name), {
      env: { GRPC_LISTENER: "workers" },
    });
    try {
      const metrics = `http://127.0.0.1:${running.platform.metricsPort}`;
      const endpoints = new Map(
        specs.map((s) => [s.name, { grpc: running.grpcAddress, metrics }]),
      );
      const results = await verifyDeployment({ specs, endpoints });
      const failed = results.filter((r) => !r.ok);
      assertEquals(failed, [], JSON.stringify(failed));
      const names = results.map((r) => r.name);
      for (const spec of specs) assert(names.includes(`${spec.name}: grpc.health.v1 SERVING`));
      assert(names.includes("messaging: send to the other device and receive it"), String(names));
      assertEquals(names.filter((n) => n.startsWith("auth: delete throwaway")).length, 2);
      // The throwaway accounts were really deleted from the store.
      const usernames = results.filter((r) => r.name.startsWith("auth: register"))
        .map((r) => r.detail.split(" ")[0]!);
      assertEquals(usernames.length, 2);
      for (const username of usernames) {
        assertEquals(
          await running.platform.deps.store.auth.accounts.byUsername(username),
          undefined,
        );
      }
    } finally {
      await running.stop();
    }
  },
});

Deno.test({
  name: "verify: a service missing from the deployment and a wrong health name are failures",
  ...NO_SANITIZERS,
  fn: async () => {
    const specs = loadCatalog();
    const running = await startPlatform(["auth"], { env: { GRPC_LISTENER: "workers" } });
    try {
      const auth = specs.find((s) => s.name === "auth")!;
      const wrong = { ...auth, grpcServices: [...auth.grpcServices, "guardyn.v1.NoSuchService"] };
      const messaging = specs.find((s) => s.name === "messaging")!;
      const results = await verifyDeployment({
        specs: [wrong, messaging],
        endpoints: new Map([["auth", { grpc: running.grpcAddress }]]),
      });
      const byName = new Map(results.map((r) => [r.name, r]));
      assertEquals(byName.get("auth: grpc.health.v1 SERVING")?.ok, false);
      assert(byName.get("auth: grpc.health.v1 SERVING")!.detail.includes("NoSuchService"));
      assertEquals(byName.get("messaging: reachable")?.ok, false);
      // Without messaging there is no message round trip, but registration still runs.
      assert(!byName.has("messaging: send to the other device and receive it"));
      assert(results.filter((r) => r.name.startsWith("auth: register")).every((r) => r.ok));
    } finally {
      await running.stop();
    }
  },
});

Deno.test("verify: health statuses of an unreachable address are errors, not SERVING", async () => {
  const statuses = await healthStatuses("127.0.0.1:1", [""], 2_000);
  assert(statuses.get("") !== "SERVING");
});

Deno.test("verify: throwaway usernames are valid and distinct", () => {
  const a = throwawayUsername("alice");
  const b = throwawayUsername("alice");
  assert(/^[a-z0-9_]{3,32}$/.test(a), a);
  assert(a !== b);
});

Deno.test("verify: port-forward output, ready deployments and the ingress address", async () => {
  const forwarded = parsePortForward(
    "Forwarding from 127.0.0.1:41234 -> 50051\nForwarding from [::1]:41234 -> 50051\n" +
      "Forwarding from 127.0.0.1:39001 -> 9464\n",
  );
  assertEquals([...forwarded], [[50051, 41234], [9464, 39001]]);
  const json = JSON.stringify({
    items: [
      { metadata: { name: "auth" }, status: { readyReplicas: 1 } },
      { metadata: { name: "messaging" }, status: {} },
    ],
  });
  assertEquals(readyDeployments(json), ["auth"]);
  const local = parseK3dConfig(await Deno.readTextFile(`${root}/infra/k3d-config.yaml`));
  assertEquals(ingressAddress("local", "guardyn.localhost", local, undefined), {
    address: "127.0.0.1:8080",
    authority: "api.guardyn.localhost",
    tls: false,
  });
  assertEquals(ingressAddress("prod", "chat.example.org", local, undefined), {
    address: "api.chat.example.org:443",
    authority: "api.chat.example.org",
    tls: true,
  });
});
