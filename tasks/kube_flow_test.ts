/**
 * kube-bootstrap and deploy, end to end, against a real Kubernetes API with controllers and
 * scheduler (tasks/kube_api.ts) and fake nodes from kwok (pods are scheduled and reported
 * running and ready; no container runs, so Jobs are reported complete by kwok too). Asserts
 * what the tasks created: the namespace, every Secret with its keys and no value in the
 * tasks' output, the ConfigMap, the workloads, the schema Jobs in order, the network policies
 * and the ingress host from DOMAIN; then verify finds every service ready and stops at its
 * first port-forward. What stays unrun here: images, real pods (no kubelet), verify's checks
 * from the port-forward on, and k3d itself (docs/DEPLOY.md).
 */
import { join } from "node:path";
import { assert, assertEquals } from "../tests/assert.ts";
import { controlPlaneBin, startKubeApi } from "./kube_api.ts";
import { SECRET_KEYS } from "./kube_manifests.ts";
import { loadCatalog } from "./kube_catalog.ts";
import { run } from "./kube_tools.ts";
import { ROOT } from "./kube_test_kit.ts";
import { waitUntil } from "../tests/support/wait.ts";

const DOMAIN = "flow.example.org";

Deno.test({
  name: "kube flow: kube-bootstrap and deploy create everything, in order, on a real API",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const bin = (await controlPlaneBin())!;
    assert(bin, "control plane built (infra/tools/install.sh)");
    const api = await startKubeApi({ withControllers: true });
    const kwok = new Deno.Command(join(bin, "kwok"), {
      args: [
        `--kubeconfig=${api.kubeconfig}`,
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--cidr=10.244.0.1/16",
        "--node-ip=10.0.0.1",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const env = {
      PATH: `${bin}:${Deno.env.get("PATH")}`,
      KUBECONFIG: api.kubeconfig,
      DOMAIN,
      NO_COLOR: "1",
    };
    const kubectl = async (args: string[], stdin?: string) => {
      const r = await run(join(bin, "kubectl"), ["--kubeconfig", api.kubeconfig, ...args], {
        stdin,
      });
      assertEquals(r.code, 0, `kubectl ${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    const runTask = async (file: string, args: string[]) => {
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", join(ROOT, "tasks", file), ...args],
        env,
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(output.stdout) +
        new TextDecoder().decode(output.stderr);
      return { code: output.code, text };
    };
    const task = async (file: string, args: string[]) => {
      const { code, text } = await runTask(file, args);
      assertEquals(code, 0, `${file}:\n${text}`);
      return text;
    };
    try {
      // Two fake nodes for kwok to run (it reports their pods running and ready).
      for (const name of ["fake-1", "fake-2"]) {
        await kubectl(
          ["apply", "-f", "-"],
          JSON.stringify({
            apiVersion: "v1",
            kind: "Node",
            metadata: {
              name,
              annotations: { "kwok.x-k8s.io/node": "fake" },
              labels: { "kubernetes.io/hostname": name, type: "kwok" },
            },
          }),
        );
      }
      await waitUntil(
        async () => {
          const nodes = JSON.parse(await kubectl(["get", "nodes", "-o", "json"]));
          return nodes.items.every((
            n: { status?: { conditions?: { type: string; status: string }[] } },
          ) => n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"));
        },
        "kwok marks the nodes ready",
        60_000,
      );

      // No storage provisioner without k3d's local-path: volumes the StatefulSets' claims bind to.
      for (let i = 0; i < 6; i++) {
        await kubectl(
          ["apply", "-f", "-"],
          JSON.stringify({
            apiVersion: "v1",
            kind: "PersistentVolume",
            metadata: { name: `fake-volume-${i}` },
            spec: {
              capacity: { storage: "100Gi" },
              accessModes: ["ReadWriteOnce"],
              persistentVolumeReclaimPolicy: "Delete",
              hostPath: { path: `/tmp/guardyn-fake-volume-${i}` },
            },
          }),
        );
      }

      const bootstrapLog = await task("kube_bootstrap.ts", ["--context", api.context]);
      const secrets = JSON.parse(await kubectl(["-n", "guardyn", "get", "secrets", "-o", "json"]));
      for (const [name, keys] of Object.entries(SECRET_KEYS)) {
        const secret = secrets.items.find((s: { metadata: { name: string } }) =>
          s.metadata.name === name
        );
        assert(secret, `Secret ${name} created`);
        assertEquals(Object.keys(secret.data).sort(), [...keys].sort(), name);
        for (const value of Object.values(secret.data as Record<string, string>)) {
          const plain = new TextDecoder().decode(
            Uint8Array.from(atob(value), (c) => c.charCodeAt(0)),
          );
          for (const line of plain.split("\n").filter((l) => l.length > 12)) {
            assert(!bootstrapLog.includes(line), `no value of ${name} in bootstrap's output`);
          }
        }
      }

      const deployLog = await task("deploy.ts", [
        "--context",
        api.context,
        "--registry",
        "registry.test:5000/guardyn",
        "--tag",
        "git-0123456789ab",
      ]);
      const get = async (kind: string) =>
        JSON.parse(await kubectl(["-n", "guardyn", "get", kind, "-o", "json"])).items as {
          metadata: { name: string };
          spec?: Record<string, unknown>;
          status?: Record<string, unknown>;
          data?: Record<string, string>;
        }[];
      const deployments = await get("deployments");
      for (const spec of loadCatalog()) {
        const d = deployments.find((x) => x.metadata.name === spec.name);
        assert(d, `Deployment ${spec.name}`);
        assert(Number(d.status?.readyReplicas ?? 0) >= 1, `${spec.name} ready`);
      }
      const jobs = await get("jobs");
      const done = (name: string) => {
        const job = jobs.find((j) => j.metadata.name === name);
        assert(job && Number(job.status?.succeeded ?? 0) >= 1, `Job ${name} complete`);
        return Date.parse(String(job.status?.completionTime ?? job.status?.startTime));
      };
      const auth = done("scylla-auth");
      const migrate = done("guardyn-migrate");
      assert(auth <= migrate, "scylla-auth ran before migrate");
      assert((await get("networkpolicies")).length >= 5);
      const configMaps = await get("configmaps");
      assert(
        configMaps.some((c) => Object.values(c.data ?? {}).some((v) => v.includes(DOMAIN))),
        "a ConfigMap carries DOMAIN",
      );
      const ingresses = await get("ingresses");
      const hosts = ingresses.flatMap((i) =>
        ((i.spec?.rules ?? []) as { host: string }[]).map((r) => r.host)
      );
      assertEquals(hosts, [`api.${DOMAIN}`]);
      for (const secret of secrets.items) {
        for (const value of Object.values(secret.data as Record<string, string>)) {
          assert(!deployLog.includes(value), "no Secret value in deploy's output");
        }
      }

      // verify, as far as it goes without a kubelet: it finds every service ready through the
      // API, then its first port-forward fails (fake nodes run no pods to forward to).
      const verify = await runTask("verify.ts", ["--context", api.context, "--skip-ingress"]);
      assert(verify.code !== 0, verify.text);
      const ready = /ready: ([a-z, ]+)/.exec(verify.text)?.[1]?.split(", ") ?? [];
      assertEquals(ready.sort(), loadCatalog().map((s) => s.name).sort(), verify.text);
      assert(/port-forward service\/\w+ failed/.test(verify.text), verify.text);
    } finally {
      try {
        kwok.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await kwok.status;
      await api.stop();
    }
  },
});
