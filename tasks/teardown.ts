/**
 * `deno task teardown [--yes]`: deletes the local k3d cluster of infra/k3d-config.yaml and its
 * registry, with every volume (ScyllaDB and NATS data). Asks for the cluster name first unless
 * --yes; without a terminal and without --yes it refuses.
 */

import { repoRootFromHere } from "./kube_catalog.ts";
import { fail, loadLocalCluster, parseFlags } from "./kube_cli.ts";
import { pathWhich, requireTools, run, runChecked } from "./kube_tools.ts";
import { parseK3dClusters } from "./preflight.ts";

export type Decision = { proceed: true } | { proceed: false; reason: string };

/** Whether to delete: --yes, or a terminal user who typed the cluster name. */
export function decide(
  options: { yes: boolean; interactive: boolean; answer?: string | null },
  clusterName: string,
): Decision {
  if (options.yes) return { proceed: true };
  if (!options.interactive) {
    return {
      proceed: false,
      reason: "no terminal to confirm on: pass --yes to delete without asking",
    };
  }
  if (options.answer?.trim() === clusterName) return { proceed: true };
  return { proceed: false, reason: "not confirmed: nothing was deleted" };
}

/** Names from `k3d registry list -o json`. */
export const parseK3dRegistries = parseK3dClusters;

async function main() {
  const flags = parseFlags(Deno.args, { switches: ["yes"] });
  const cluster = await loadLocalCluster(repoRootFromHere());
  const { k3d } = await requireTools(["k3d"], pathWhich(), "teardown") as { k3d: string };
  const exists = parseK3dClusters(await runChecked(k3d, ["cluster", "list", "-o", "json"]))
    .includes(cluster.name);
  const registry = cluster.registry.inCluster.split(":")[0]!;
  const registryExists = parseK3dRegistries(
    (await run(k3d, ["registry", "list", "-o", "json"])).stdout,
  ).includes(registry);
  if (!exists && !registryExists) {
    console.log(`teardown: no cluster ${cluster.name} and no registry ${registry}: nothing to do`);
    return;
  }
  const interactive = Deno.stdin.isTerminal();
  const answer = !flags.switches.has("yes") && interactive
    ? prompt(
      `Delete k3d cluster "${cluster.name}" with all its data (ScyllaDB, NATS) and registry ` +
        `${registry}? Type the cluster name to confirm:`,
    )
    : undefined;
  const decision = decide({ yes: flags.switches.has("yes"), interactive, answer }, cluster.name);
  if (!decision.proceed) throw new Error(decision.reason);
  if (exists) await runChecked(k3d, ["cluster", "delete", cluster.name], { inherit: true });
  // A registry made with the cluster normally goes with it; remove a leftover one.
  const left = parseK3dRegistries((await run(k3d, ["registry", "list", "-o", "json"])).stdout);
  if (left.includes(registry)) {
    await runChecked(k3d, ["registry", "delete", registry], { inherit: true });
  }
  console.log(`teardown: cluster ${cluster.name} and registry ${registry} are gone`);
}

if (import.meta.main) await main().catch((error) => fail("teardown", error));
