/**
 * Shared command-line plumbing of the cluster tasks: flags, the local cluster's settings from
 * infra/k3d-config.yaml, the namespace from the base manifests, and which kube context a task
 * talks to (never a guess for production).
 */

import { parse } from "yaml";
import type { Overlay } from "./kube_render.ts";

export interface Flags {
  /** --name value / --name=value options. */
  options: Record<string, string>;
  /** --name switches. */
  switches: Set<string>;
}

/** Parses flags against the allowed names; anything else is a clear error. */
export function parseFlags(
  args: readonly string[],
  allowed: { options?: readonly string[]; switches?: readonly string[] },
): Flags {
  const options: Record<string, string> = {};
  const switches = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const match = /^--([a-z][a-z-]*)(?:=(.*))?$/.exec(arg);
    if (!match) throw new Error(`unexpected argument ${JSON.stringify(arg)}`);
    const [, name = "", inline] = match;
    if (allowed.switches?.includes(name) && inline === undefined) {
      switches.add(name);
    } else if (allowed.options?.includes(name)) {
      const value = inline ?? args[++i];
      if (value === undefined || value.startsWith("--")) throw new Error(`--${name} needs a value`);
      options[name] = value;
    } else {
      const known = [...(allowed.options ?? []), ...(allowed.switches ?? [])].map((n) => `--${n}`);
      throw new Error(`unknown flag --${name} (known: ${known.join(", ") || "none"})`);
    }
  }
  return { options, switches };
}

export interface LocalCluster {
  /** k3d cluster name (metadata.name). */
  name: string;
  /** kubeconfig context k3d writes: "k3d-<name>". */
  context: string;
  /** Host ports the cluster binds: API server, load balancer ports, registry. */
  hostPorts: { port: number; what: string }[];
  /** Registry as the cluster's pods name it, and as this machine pushes to it. */
  registry: { inCluster: string; push: string };
}

const PORT_MAPPING = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d{1,5}):(\d{1,5})(?:\/(?:tcp|udp))?$/;

/** Reads infra/k3d-config.yaml (pure: takes the text). */
export function parseK3dConfig(text: string): LocalCluster {
  // deno-lint-ignore no-explicit-any
  const config = parse(text) as any;
  const name = config?.metadata?.name;
  if (typeof name !== "string" || !/^[a-z][a-z0-9-]{0,30}$/.test(name)) {
    throw new Error("infra/k3d-config.yaml: metadata.name must be a short DNS label");
  }
  const hostPorts: { port: number; what: string }[] = [];
  const apiPort = Number(config?.kubeAPI?.hostPort);
  if (!Number.isInteger(apiPort) || apiPort < 1 || apiPort > 65535) {
    throw new Error("infra/k3d-config.yaml: kubeAPI.hostPort must be a port");
  }
  hostPorts.push({ port: apiPort, what: "Kubernetes API" });
  for (const entry of config?.ports ?? []) {
    const match = PORT_MAPPING.exec(String(entry?.port ?? ""));
    if (!match) throw new Error(`infra/k3d-config.yaml: cannot read port mapping ${entry?.port}`);
    hostPorts.push({ port: Number(match[2]), what: `load balancer -> ${match[3]}` });
  }
  const registryName = config?.registries?.create?.name;
  const registryPort = Number(config?.registries?.create?.hostPort);
  if (typeof registryName !== "string" || !Number.isInteger(registryPort)) {
    throw new Error("infra/k3d-config.yaml: registries.create needs name and hostPort");
  }
  hostPorts.push({ port: registryPort, what: "image registry" });
  return {
    name,
    context: `k3d-${name}`,
    hostPorts,
    registry: { inCluster: `${registryName}:${registryPort}`, push: `localhost:${registryPort}` },
  };
}

export async function loadLocalCluster(repoRoot: string): Promise<LocalCluster> {
  return parseK3dConfig(await Deno.readTextFile(`${repoRoot}/infra/k3d-config.yaml`));
}

export const NAMESPACE_FILE = "infra/k8s/base/namespace.yaml";

/** The namespace name from infra/k8s/base/namespace.yaml (pure: takes the text). */
export function parseNamespace(text: string): string {
  // deno-lint-ignore no-explicit-any
  const doc = parse(text) as any;
  const name = doc?.metadata?.name;
  if (doc?.kind !== "Namespace" || typeof name !== "string") {
    throw new Error(`${NAMESPACE_FILE} must define one Namespace`);
  }
  return name;
}

export async function loadNamespace(repoRoot: string): Promise<string> {
  return parseNamespace(await Deno.readTextFile(`${repoRoot}/${NAMESPACE_FILE}`));
}

/**
 * The kube context: --context, else KUBE_CONTEXT, else the k3d context for the local overlay.
 * Production never falls back to the current context, so a local deploy cannot land there.
 */
export function chooseContext(
  overlay: Overlay,
  flag: string | undefined,
  env: Record<string, string | undefined>,
  local: LocalCluster,
): string {
  const chosen = flag ?? env.KUBE_CONTEXT?.trim();
  if (chosen) return chosen;
  if (overlay === "local") return local.context;
  throw new Error(
    "the prod overlay needs an explicit kube context: --context NAME or KUBE_CONTEXT=NAME",
  );
}

/** Prints a one-line error and exits 1 (the tasks' entry points). */
export function fail(task: string, error: unknown): never {
  console.error(`${task}: ${error instanceof Error ? error.message : String(error)}`);
  Deno.exit(1);
}
