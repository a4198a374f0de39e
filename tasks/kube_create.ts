/**
 * `deno task kube-create`: creates the local k3d cluster of infra/k3d-config.yaml (k3s with
 * Traefik and network policies, a local image registry, the ingress on loopback ports) and
 * switches kubectl to its context. Creating a cluster that already exists is a no-op.
 * `--topology ha` creates the production-like one of infra/k3d-config-ha.yaml instead (three
 * servers, two agents) for the prod overlay's spread replicas.
 */

import { repoRootFromHere } from "./kube_catalog.ts";
import { fail, loadLocalCluster, parseFlags } from "./kube_cli.ts";
import { MissingToolsError, pathWhich, requireTools, run, runChecked } from "./kube_tools.ts";
import { parseK3dClusters } from "./preflight.ts";

export const TOPOLOGIES = {
  single: "infra/k3d-config.yaml",
  ha: "infra/k3d-config-ha.yaml",
} as const;

/** The k3d configuration file of a topology (one server by default). */
export function k3dConfigFor(topology = "single"): string {
  if (topology in TOPOLOGIES) return TOPOLOGIES[topology as keyof typeof TOPOLOGIES];
  throw new Error(`unknown --topology ${topology}: use ${Object.keys(TOPOLOGIES).join(" or ")}`);
}

async function main() {
  const flags = parseFlags(Deno.args, { options: ["topology"], switches: [] });
  const config = k3dConfigFor(flags.options.topology);
  const root = repoRootFromHere();
  const cluster = await loadLocalCluster(root);
  const which = pathWhich();
  const { k3d, kubectl } = await requireTools(["k3d", "kubectl"], which, "kube-create") as {
    k3d: string;
    kubectl: string;
  };
  // k3d runs its nodes as containers: it needs a Docker-compatible engine that answers.
  const docker = await which("docker");
  if (!docker) throw new MissingToolsError(["docker"], "kube-create");
  if ((await run(docker, ["info"])).code !== 0) {
    throw new Error("the Docker engine does not answer (`docker info` failed): start it first");
  }
  const listed = await runChecked(k3d, ["cluster", "list", "-o", "json"]);
  if (parseK3dClusters(listed).includes(cluster.name)) {
    console.log(`kube-create: cluster ${cluster.name} already exists (context ${cluster.context})`);
  } else {
    console.log(`kube-create: creating cluster ${cluster.name} from ${config}`);
    await runChecked(k3d, ["cluster", "create", "--config", `${root}/${config}`], {
      inherit: true,
    });
  }
  const nodes = await runChecked(kubectl, [
    "--context",
    cluster.context,
    "get",
    "nodes",
    "-o",
    "name",
  ]);
  console.log(
    `kube-create: ${
      nodes.trim().split("\n").length
    } node(s) ready in context ${cluster.context}; ` +
      `registry ${cluster.registry.push} (pods pull ${cluster.registry.inCluster})\n` +
      "next: deno task kube-bootstrap, deno task build, deno task deploy, deno task verify",
  );
}

if (import.meta.main) await main().catch((error) => fail("kube-create", error));
