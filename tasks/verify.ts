/**
 * `deno task verify [--overlay local|prod] [--context NAME] [--ingress HOST:PORT] [--skip-ingress]`
 *
 * Real checks against the deployed services (see tasks/verify_checks.ts): kubectl port-forwards
 * each service's gRPC and metrics ports, then health, a registration round trip through the
 * auth service and, when messaging is deployed, a message from one device to another. The
 * ingress check dials api.$DOMAIN: locally through the k3d load balancer port (plain h2c), in
 * prod on port 443 with TLS. Exit code 1 when any check fails.
 */

import { loadCatalog, repoRootFromHere } from "./kube_catalog.ts";
import {
  chooseContext,
  fail,
  loadLocalCluster,
  loadNamespace,
  type LocalCluster,
  parseFlags,
} from "./kube_cli.ts";
import { GRPC_PORT, METRICS_PORT } from "./kube_manifests.ts";
import { checkDomain, type Overlay, parseOverlay } from "./kube_render.ts";
import { pathWhich, requireTools, runChecked } from "./kube_tools.ts";
import {
  type Endpoint,
  formatResult,
  verifyDeployment,
  type VerifyTarget,
} from "./verify_checks.ts";

/** Local ports from `kubectl port-forward` output: remote port -> local port (IPv4 lines). */
export function parsePortForward(text: string): Map<number, number> {
  const ports = new Map<number, number>();
  for (const match of text.matchAll(/Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)/g)) {
    ports.set(Number(match[2]), Number(match[1]));
  }
  return ports;
}

/** Deployment names with at least one ready replica, from `kubectl get deployments -o json`. */
export function readyDeployments(json: string): string[] {
  // deno-lint-ignore no-explicit-any
  const items: any[] = JSON.parse(json)?.items ?? [];
  return items
    .filter((d) => (d?.status?.readyReplicas ?? 0) > 0)
    .map((d) => String(d?.metadata?.name ?? ""));
}

/** Where the ingress answers: the k3d load balancer port for :80 locally, 443 with TLS in prod. */
export function ingressAddress(
  overlay: Overlay,
  domain: string,
  local: LocalCluster,
  override: string | undefined,
): { address: string; authority: string; tls: boolean } {
  const authority = `api.${domain}`;
  if (override) return { address: override, authority, tls: overlay === "prod" };
  if (overlay === "prod") return { address: `${authority}:443`, authority, tls: true };
  const http = local.hostPorts.find((p) => p.what === "load balancer -> 80");
  if (!http) throw new Error("infra/k3d-config.yaml maps no host port to the ingress port 80");
  return { address: `127.0.0.1:${http.port}`, authority, tls: false };
}

interface Forward {
  ports: Map<number, number>;
  stop(): Promise<void>;
}

const FORWARD_TIMEOUT_MS = 30_000;

async function portForward(kubectl: string, args: string[], wanted: number[]): Promise<Forward> {
  const child = new Deno.Command(kubectl, {
    args: [...args, ...wanted.map((port) => `:${port}`)],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status.catch(() => {});
  };
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const errors = new Response(child.stderr).text();
  let text = "";
  const deadline = Date.now() + FORWARD_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const ports = parsePortForward(text);
    if (wanted.every((port) => ports.has(port))) {
      // Keep draining so kubectl never blocks on a full pipe.
      (async () => {
        while (!(await reader.read()).done) { /* discard */ }
      })().catch(() => {});
      return { ports, stop };
    }
    const chunk = await Promise.race([
      reader.read(),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 1_000)),
    ]);
    if (chunk?.done) break;
    if (chunk?.value) text += chunk.value;
  }
  await stop();
  throw new Error(`kubectl port-forward ${args.at(-1)} failed: ${(await errors).trim() || text}`);
}

async function main() {
  const flags = parseFlags(Deno.args, {
    options: ["overlay", "context", "ingress"],
    switches: ["skip-ingress"],
  });
  const root = repoRootFromHere();
  const env = Deno.env.toObject();
  const overlay = parseOverlay(flags.options.overlay ?? "local");
  const domain = checkDomain(env.DOMAIN);
  const local = await loadLocalCluster(root);
  const context = chooseContext(overlay, flags.options.context, env, local);
  const namespace = await loadNamespace(root);
  const specs = loadCatalog();
  const { kubectl } = await requireTools(["kubectl"], pathWhich(), "verify") as { kubectl: string };
  const kc = ["--context", context, "-n", namespace];
  const ready = readyDeployments(
    await runChecked(kubectl, [
      ...kc,
      "get",
      "deployments",
      "-l",
      "app.kubernetes.io/component=api",
      "-o",
      "json",
    ]),
  );
  console.log(
    `verify: context ${context}, namespace ${namespace}, ready: ${ready.join(", ") || "none"}`,
  );
  const forwards: Forward[] = [];
  let failed = 0;
  try {
    const endpoints = new Map<string, Endpoint>();
    for (const spec of specs.filter((s) => ready.includes(s.name))) {
      const forward = await portForward(
        kubectl,
        [...kc, "port-forward", `service/${spec.name}`],
        [GRPC_PORT, METRICS_PORT],
      );
      forwards.push(forward);
      endpoints.set(spec.name, {
        grpc: `127.0.0.1:${forward.ports.get(GRPC_PORT)}`,
        metrics: `http://127.0.0.1:${forward.ports.get(METRICS_PORT)}`,
      });
    }
    const target: VerifyTarget = {
      specs,
      endpoints,
      ...(flags.switches.has("skip-ingress")
        ? {}
        : { ingress: ingressAddress(overlay, domain, local, flags.options.ingress) }),
    };
    const results = await verifyDeployment(target, (result) => console.log(formatResult(result)));
    failed = results.filter((r) => !r.ok).length;
    console.log(`verify: ${results.length - failed} passed, ${failed} failed`);
  } finally {
    await Promise.all(forwards.map((f) => f.stop()));
  }
  if (failed > 0) Deno.exit(1);
}

if (import.meta.main) await main().catch((error) => fail("verify", error));
