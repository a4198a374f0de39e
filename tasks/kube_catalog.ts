/**
 * The Kubernetes view of the service catalog (services/runtime/catalog.ts): one entry per
 * service that runs in its own pod, with the gRPC services and sizing each module declares.
 * Everything per service in the Kubernetes manifests (Deployment, Service, PDB, ingress routes,
 * prod HPA and anti-affinity) is generated from it, so adding a service is one catalog line.
 */

import { CATALOG } from "../services/runtime/catalog.ts";

export interface ServiceResources {
  /** CPU request, e.g. "250m". */
  cpu: string;
  /** Memory request, e.g. "256Mi". */
  memory: string;
  /** Memory limit (the OOM line), at least the request. */
  memoryLimit: string;
}

export interface ServiceSpec {
  /** Folder name under services/ and the Kubernetes name: "auth", "messaging", ... */
  name: string;
  /** Fully qualified gRPC services it serves; the ingress routes each to this service. */
  grpcServices: string[];
  resources: ServiceResources;
  /** Production autoscaling bounds (minReplicas is at least 2). */
  prod: { minReplicas: number; maxReplicas: number };
  /** Extra Secrets its pods read (SECRET_NAMES keys in kube_manifests.ts). */
  secrets: ("s3" | "turn" | "push")[];
}

export const CATALOG_PATH = "services/runtime/catalog.ts";

const NAME = /^[a-z][a-z0-9-]{0,30}[a-z0-9]$/;
const GRPC_SERVICE = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.[A-Z][A-Za-z0-9]{0,99}$/;
const CPU = /^([1-9][0-9]{0,5}m|[1-9][0-9]?(\.[0-9]{1,3})?)$/;
const MEMORY = /^[1-9][0-9]{0,5}(Mi|Gi)$/;
const MAX_SERVICES = 32;
const MAX_GRPC_SERVICES = 16;
const MAX_REPLICAS = 100;

/** Mebibytes of a "256Mi" / "1Gi" quantity (inputs validated by MEMORY). */
export function mebibytes(quantity: string): number {
  const value = Number(quantity.slice(0, -2));
  return quantity.endsWith("Gi") ? value * 1024 : value;
}

/** Parses and validates the catalog; every problem is reported at once. */
export function parseCatalog(data: unknown): ServiceSpec[] {
  const problems: string[] = [];
  const services = (data as { services?: unknown })?.services;
  if (!Array.isArray(services) || services.length === 0 || services.length > MAX_SERVICES) {
    throw new Error(`${CATALOG_PATH}: "services" must be a list of 1..${MAX_SERVICES} entries`);
  }
  const names = new Set<string>();
  const routed = new Map<string, string>();
  const specs: ServiceSpec[] = [];
  for (const [index, raw] of services.entries()) {
    const entry = raw as Partial<ServiceSpec> | null;
    const where = `${CATALOG_PATH}: services[${index}]`;
    const name = entry?.name;
    if (typeof name !== "string" || !NAME.test(name)) {
      problems.push(`${where}.name must match ${NAME} (a DNS label), got ${JSON.stringify(name)}`);
      continue;
    }
    if (names.has(name)) problems.push(`${where}: service "${name}" appears twice`);
    names.add(name);
    const grpc = entry?.grpcServices;
    if (!Array.isArray(grpc) || grpc.length === 0 || grpc.length > MAX_GRPC_SERVICES) {
      problems.push(`${where}.grpcServices must list 1..${MAX_GRPC_SERVICES} gRPC services`);
    } else {
      for (const service of grpc) {
        if (typeof service !== "string" || !GRPC_SERVICE.test(service)) {
          problems.push(`${where}.grpcServices: ${JSON.stringify(service)} is not package.Service`);
        } else if (routed.has(service)) {
          problems.push(`${where}: ${service} is already served by "${routed.get(service)}"`);
        } else routed.set(service, name);
      }
    }
    const res = entry?.resources;
    if (
      !res || typeof res.cpu !== "string" || !CPU.test(res.cpu) ||
      typeof res.memory !== "string" || !MEMORY.test(res.memory) ||
      typeof res.memoryLimit !== "string" || !MEMORY.test(res.memoryLimit)
    ) {
      problems.push(
        `${where}.resources needs cpu ("250m" or "1"), memory and memoryLimit ("256Mi", "1Gi")`,
      );
    } else if (mebibytes(res.memoryLimit) < mebibytes(res.memory)) {
      problems.push(`${where}.resources.memoryLimit must be at least the memory request`);
    }
    const prod = entry?.prod;
    const min = prod?.minReplicas;
    const max = prod?.maxReplicas;
    if (
      !Number.isInteger(min) || !Number.isInteger(max) || min! < 2 || max! < min! ||
      max! > MAX_REPLICAS
    ) {
      problems.push(
        `${where}.prod needs integers 2 <= minReplicas <= maxReplicas <= ${MAX_REPLICAS}`,
      );
    }
    const secrets = entry?.secrets ?? [];
    if (!Array.isArray(secrets) || secrets.some((x) => !["s3", "turn", "push"].includes(x))) {
      problems.push(`${where}.secrets may list "s3", "turn" and "push" only`);
    }
    if (problems.length === 0) specs.push(entry as ServiceSpec);
  }
  if (problems.length > 0) throw new Error(problems.join("\n"));
  return specs.map(({ name, grpcServices, resources, prod, secrets }) => ({
    name,
    grpcServices: [...grpcServices],
    resources: { cpu: resources.cpu, memory: resources.memory, memoryLimit: resources.memoryLimit },
    prod: { minReplicas: prod.minReplicas, maxReplicas: prod.maxReplicas },
    secrets: [...(secrets ?? [])],
  }));
}

/** The catalog's services as deployment specs, validated (every problem at once). */
export function loadCatalog(): ServiceSpec[] {
  return parseCatalog({
    services: CATALOG.filter((module) => !module.deploy.notInKubernetesYet).map((module) => ({
      name: module.name,
      grpcServices: [...module.grpcServices],
      resources: module.deploy.resources,
      prod: module.deploy.prod,
      secrets: [...(module.deploy.secrets ?? [])],
    })),
  });
}

/** The repository root, from this file's location (tasks/ sits at the root). */
export function repoRootFromHere(): string {
  return new URL("..", import.meta.url).pathname.replace(/\/$/, "");
}
