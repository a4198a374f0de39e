/**
 * The manifests against a real Kubernetes API (tasks/kube_api.ts: etcd and kube-apiserver
 * from the Go module proxy, RBAC and token authentication): every overlay passes a server-side
 * dry-run, so the API server's own validation and admission, Pod Security included, accept
 * them; and a manifest Pod Security must refuse is refused (admission really runs).
 */
import { join } from "node:path";
import { assert, assertEquals } from "../tests/assert.ts";
import { controlPlaneBin, type KubeApi, startKubeApi } from "./kube_api.ts";
import { render } from "./kube_test_kit.ts";
import { run } from "./kube_tools.ts";

let running: Promise<KubeApi> | undefined;
const api = () => running ??= startKubeApi();

async function kubectl(k: KubeApi, args: string[], stdin?: string) {
  const bin = (await controlPlaneBin(["kubectl"]))!;
  return await run(join(bin, "kubectl"), ["--kubeconfig", k.kubeconfig, ...args], { stdin });
}

for (const overlay of ["local", "prod"] as const) {
  Deno.test({
    name: `kube api: the ${overlay} overlay passes a server-side dry-run (validation, admission)`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const k = await api();
      const { manifests } = await render(overlay);
      // Namespaced objects need their namespace to exist; it is the one real write.
      const namespaces = manifests.filter((m) => m.kind === "Namespace");
      assertEquals(namespaces.length, 1);
      const created = await kubectl(k, ["apply", "-f", "-"], JSON.stringify(namespaces[0]));
      assertEquals(created.code, 0, created.stderr);
      const list = JSON.stringify({ apiVersion: "v1", kind: "List", items: manifests });
      const dry = await kubectl(k, ["apply", "--dry-run=server", "-f", "-"], list);
      assertEquals(dry.code, 0, dry.stderr);
      const lines = dry.stdout.trim().split("\n");
      assertEquals(lines.length, manifests.length, dry.stdout);
      assert(lines.every((l) => l.endsWith("(server dry run)")), dry.stdout);
      // The namespace enforces "baseline" and warns at "restricted": only ScyllaDB's pods, whose
      // image starts as root (infra/k8s/base/namespace.yaml), may draw the warning.
      const warnings = dry.stderr.split("\n").filter((l) =>
        l.includes("would violate PodSecurity")
      );
      for (const warning of warnings) {
        const containers = [...warning.matchAll(/container "([^"]+)"/g)].map((m) => m[1]);
        assert(containers.every((c) => c === "scylla"), warning);
      }
    },
  });
}

Deno.test({
  name: "kube api: Pod Security refuses a privileged pod in the guardyn namespace",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const k = await api();
    const { manifests } = await render("local");
    await kubectl(
      k,
      ["apply", "-f", "-"],
      JSON.stringify(manifests.find((m) => m.kind === "Namespace")),
    );
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "privileged", namespace: "guardyn" },
      spec: { containers: [{ name: "c", image: "x", securityContext: { privileged: true } }] },
    };
    const refused = await kubectl(k, ["apply", "--dry-run=server", "-f", "-"], JSON.stringify(pod));
    assert(refused.code !== 0 && /PodSecurity|forbidden/i.test(refused.stderr), refused.stderr);
  },
});

Deno.test({
  name: "kube api: stop",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    if (running) await (await running).stop();
  },
});
