/**
 * `deno task preflight`: says whether this machine can run the local cluster path, and what to
 * install or fix when it cannot: the tools (k3d, kubectl, kustomize or `kubectl kustomize`, a
 * container builder whose engine answers), DOMAIN (set, and valid by the services' own rule),
 * and the host ports of infra/k3d-config.yaml (free, unless the cluster already holds them).
 * Pure: `preflightReport` turns gathered facts into the report; `main` gathers them.
 */

import { repoRootFromHere } from "./kube_catalog.ts";
import { fail, loadLocalCluster, type LocalCluster } from "./kube_cli.ts";
import { checkDomain } from "./kube_render.ts";
import { BUILDERS, pathWhich, run, type ToolName, TOOLS } from "./kube_tools.ts";

export interface PreflightFacts {
  /** Path of each tool found, undefined when absent. */
  tools: Partial<Record<ToolName, string>>;
  /** Builders whose engine answered (`<builder> info`). */
  enginesUp: ToolName[];
  domain: string | undefined;
  cluster: LocalCluster;
  /** Host ports that are already taken. */
  busyPorts: number[];
  /** The k3d cluster of infra/k3d-config.yaml already exists. */
  clusterExists: boolean;
}

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** What to do when not ok. */
  fix?: string;
}

const toolFix = (tool: ToolName) => `install ${tool}: ${TOOLS[tool].install}`;

export function preflightReport(facts: PreflightFacts): { checks: Check[]; ok: boolean } {
  const checks: Check[] = [];
  for (const tool of ["k3d", "kubectl"] as const) {
    const path = facts.tools[tool];
    checks.push({
      name: tool,
      ok: path !== undefined,
      detail: path ?? `missing (${TOOLS[tool].purpose})`,
      ...(path ? {} : { fix: toolFix(tool) }),
    });
  }
  const kustomize = facts.tools.kustomize ??
    (facts.tools.kubectl ? `${facts.tools.kubectl} kustomize` : undefined);
  checks.push({
    name: "kustomize",
    ok: kustomize !== undefined,
    detail: kustomize ?? `missing (${TOOLS.kustomize.purpose})`,
    ...(kustomize ? {} : { fix: toolFix("kustomize") }),
  });
  const installed = BUILDERS.filter((b) => facts.tools[b] !== undefined);
  const running = installed.find((b) => facts.enginesUp.includes(b));
  checks.push({
    name: "container builder",
    ok: running !== undefined,
    detail: running
      ? `${running} (${facts.tools[running]})`
      : installed.length > 0
      ? `${installed.join(", ")} installed, but no engine answers`
      : "none of docker, podman, nerdctl",
    ...(running ? {} : {
      fix: installed.length > 0
        ? `start the engine (e.g. systemctl start docker) so that \`${installed[0]} info\` works`
        : toolFix("docker"),
    }),
  });
  try {
    const domain = checkDomain(facts.domain);
    checks.push({ name: "DOMAIN", ok: true, detail: `${domain} (ingress host api.${domain})` });
  } catch (error) {
    checks.push({
      name: "DOMAIN",
      ok: false,
      detail: (error as Error).message,
      fix: "export DOMAIN=<domain>, e.g. DOMAIN=guardyn.localhost for the local cluster",
    });
  }
  for (const { port, what } of facts.cluster.hostPorts) {
    const busy = facts.busyPorts.includes(port);
    const held = busy && facts.clusterExists;
    checks.push({
      name: `port ${port}`,
      ok: !busy || held,
      detail: held
        ? `${what}: in use by the existing cluster ${facts.cluster.name}`
        : busy
        ? `${what}: already in use`
        : `${what}: free`,
      ...(busy && !held ? { fix: `free port ${port} or change it in infra/k3d-config.yaml` } : {}),
    });
  }
  return { checks, ok: checks.every((c) => c.ok) };
}

export function formatReport(report: { checks: Check[]; ok: boolean }): string {
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const lines = report.checks.map((c) =>
    `${c.ok ? "ok     " : "MISSING"}  ${c.name.padEnd(width)}  ${c.detail}` +
    (c.fix ? `\n         ${" ".repeat(width)}  -> ${c.fix}` : "")
  );
  lines.push(
    report.ok
      ? "preflight: ready for deno task kube-create"
      : `preflight: ${report.checks.filter((c) => !c.ok).length} problem(s) to fix first`,
  );
  return lines.join("\n");
}

/** True when something already listens on 127.0.0.1:port (or we may not bind it). */
export function portBusy(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return false;
  } catch {
    return true;
  }
}

/** Names from `k3d cluster list -o json`. */
export function parseK3dClusters(output: string): string[] {
  const data = JSON.parse(output || "[]");
  if (!Array.isArray(data)) return [];
  return data.map((c) => String(c?.name ?? "")).filter((n) => n !== "");
}

export async function gatherFacts(root: string): Promise<PreflightFacts> {
  const which = pathWhich();
  const tools: Partial<Record<ToolName, string>> = {};
  for (const tool of ["k3d", "kubectl", "kustomize", ...BUILDERS] as ToolName[]) {
    const path = await which(tool);
    if (path) tools[tool] = path;
  }
  const enginesUp: ToolName[] = [];
  for (const builder of BUILDERS) {
    const path = tools[builder];
    if (path && (await run(path, ["info"])).code === 0) enginesUp.push(builder);
  }
  const cluster = await loadLocalCluster(root);
  let clusterExists = false;
  if (tools.k3d) {
    const listed = await run(tools.k3d, ["cluster", "list", "-o", "json"]);
    if (listed.code === 0) clusterExists = parseK3dClusters(listed.stdout).includes(cluster.name);
  }
  return {
    tools,
    enginesUp,
    domain: Deno.env.get("DOMAIN"),
    cluster,
    busyPorts: cluster.hostPorts.map((p) => p.port).filter(portBusy),
    clusterExists,
  };
}

if (import.meta.main) {
  try {
    const report = preflightReport(await gatherFacts(repoRootFromHere()));
    console.log(formatReport(report));
    if (!report.ok) Deno.exit(1);
  } catch (error) {
    fail("preflight", error);
  }
}
