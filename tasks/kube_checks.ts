/**
 * Policy checks over rendered manifests, shared by the tests and by `deno task deploy` (which
 * refuses to apply a render that fails one). Each check returns a list of problems, empty when
 * the manifests comply. Pure: no cluster, no files.
 */

import { ConfigError } from "../services/platform/env.ts";
import { parseConfig } from "../services/runtime/config.ts";
import { CATALOG } from "../services/runtime/catalog.ts";
import type { ServiceSpec } from "./kube_catalog.ts";
import {
  DOMAIN_PLACEHOLDER,
  EXTERNAL_SECRETS,
  INGRESS_NAME,
  type Manifest,
  SECRET_KEYS,
} from "./kube_manifests.ts";
import { MIGRATE_IMAGE, type Overlay } from "./kube_render.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

const COMPONENT = "app.kubernetes.io/component";
const NAME = "app.kubernetes.io/name";

export const kindOf = (m: Manifest) => String(m.kind ?? "");
export const nameOf = (m: Manifest) => String((m as Any).metadata?.name ?? "");
export const labelsOf = (m: Manifest): Record<string, string> => (m as Any).metadata?.labels ?? {};

export function find(manifests: readonly Manifest[], kind: string, name: string) {
  return manifests.find((m) => kindOf(m) === kind && nameOf(m) === name);
}

/** Deployments of the Guardyn services (component=api). */
export function serviceDeployments(manifests: readonly Manifest[]): Manifest[] {
  return manifests.filter((m) => kindOf(m) === "Deployment" && labelsOf(m)[COMPONENT] === "api");
}

/** Every workload (Deployment, StatefulSet, Job) with its pod spec. */
export function workloads(manifests: readonly Manifest[]): { manifest: Manifest; pod: Any }[] {
  return manifests
    .filter((m) => ["Deployment", "StatefulSet", "Job"].includes(kindOf(m)))
    .map((manifest) => ({ manifest, pod: (manifest as Any).spec?.template?.spec ?? {} }));
}

const id = (m: Manifest) => `${kindOf(m)}/${nameOf(m)}`;

/**
 * Probes, resources and the hardened security context on every Guardyn service pod and the
 * migrate Job; resources, probes and seccomp on every other workload.
 */
export function checkWorkloads(manifests: readonly Manifest[]): string[] {
  const problems: string[] = [];
  for (const { manifest, pod } of workloads(manifests)) {
    const where = id(manifest);
    const containers: Any[] = pod.containers ?? [];
    if (containers.length === 0) problems.push(`${where}: no containers`);
    if (pod.securityContext?.seccompProfile?.type !== "RuntimeDefault") {
      problems.push(`${where}: pod securityContext.seccompProfile must be RuntimeDefault`);
    }
    if (pod.automountServiceAccountToken !== false) {
      problems.push(`${where}: automountServiceAccountToken must be false (no API access needed)`);
    }
    const ours = isGuardynImage(containers);
    const isService = labelsOf(manifest)[COMPONENT] === "api";
    for (const c of containers) {
      const at = `${where} container ${c.name}`;
      if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory) {
        problems.push(`${at}: resources.requests needs cpu and memory`);
      }
      if (!c.resources?.limits?.memory) problems.push(`${at}: resources.limits.memory is missing`);
      if (c.securityContext?.allowPrivilegeEscalation !== false) {
        problems.push(`${at}: allowPrivilegeEscalation must be false`);
      }
      if (kindOf(manifest) !== "Job" && (!c.readinessProbe || !c.livenessProbe)) {
        problems.push(`${at}: needs readinessProbe and livenessProbe`);
      }
      if (ours) {
        if (pod.securityContext?.runAsNonRoot !== true) {
          problems.push(`${where}: pod securityContext.runAsNonRoot must be true`);
        }
        if (c.securityContext?.readOnlyRootFilesystem !== true) {
          problems.push(`${at}: readOnlyRootFilesystem must be true`);
        }
        if (!(c.securityContext?.capabilities?.drop ?? []).includes("ALL")) {
          problems.push(`${at}: capabilities.drop must include ALL`);
        }
      }
      if (isService) problems.push(...checkServiceContainer(at, c));
    }
    if (isService) {
      const annotations = (manifest as Any).spec?.template?.metadata?.annotations ?? {};
      const metricsPort = portNumber(containers[0], "metrics");
      if (
        annotations["prometheus.io/scrape"] !== "true" ||
        annotations["prometheus.io/port"] !== String(metricsPort) ||
        annotations["prometheus.io/path"] !== "/metrics"
      ) {
        problems.push(
          `${where}: Prometheus annotations must point at /metrics on the metrics port`,
        );
      }
    }
  }
  return [...new Set(problems)];
}

function isGuardynImage(containers: Any[]): boolean {
  return containers.some((c) => /(^|\/)guardyn-[a-z0-9-]+(:|$)/.test(String(c.image ?? "")));
}

function portNumber(container: Any, name: string): number | undefined {
  return (container?.ports ?? []).find((p: Any) => p.name === name)?.containerPort;
}

function checkServiceContainer(at: string, c: Any): string[] {
  const problems: string[] = [];
  const grpcPort = portNumber(c, "grpc");
  if (grpcPort === undefined || portNumber(c, "metrics") === undefined) {
    problems.push(`${at}: needs container ports named grpc and metrics`);
  }
  const readiness = c.readinessProbe ?? {};
  const readyByGrpc = readiness.grpc?.port === grpcPort;
  const readyByHttp = readiness.httpGet?.path === "/readyz" &&
    readiness.httpGet?.port === "metrics";
  if (!readyByGrpc && !readyByHttp) {
    problems.push(`${at}: readinessProbe must be grpc on the gRPC port or GET /readyz on metrics`);
  }
  if (c.livenessProbe?.httpGet?.path !== "/healthz") {
    problems.push(`${at}: livenessProbe must be GET /healthz`);
  }
  return problems;
}

/** Placeholder values for secret keys, so the environment can be parsed like a pod sees it. */
const SECRET_SAMPLE: Record<string, string> = {
  CQL_USERNAME: "guardyn",
  CQL_PASSWORD: "sample-password-not-a-secret",
  NATS_TOKEN: "sample-token-not-a-secret",
  S3_ACCESS_KEY_ID: "sample-access-key",
  S3_SECRET_ACCESS_KEY: "sample-secret-key-not-a-secret",
  TURN_SHARED_SECRET: "sample-turn-secret-not-a-secret",
  // The shape of a P-256 private scalar in base64url (43 characters), no real key.
  VAPID_PRIVATE_KEY: "sample-vapid-key-not-a-secret-000000000000x",
};

/**
 * The environment a container sees: ConfigMaps and Secrets from envFrom, then env entries
 * (secret values replaced by samples). Unresolvable references are reported as problems.
 */
export function containerEnv(
  manifests: readonly Manifest[],
  container: Any,
): { env: Record<string, string>; problems: string[] } {
  const env: Record<string, string> = {};
  const problems: string[] = [];
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) {
      const map = find(manifests, "ConfigMap", source.configMapRef.name) as Any;
      if (!map) problems.push(`ConfigMap ${source.configMapRef.name} is not in the render`);
      else Object.assign(env, map.data ?? {});
    } else if (source.secretRef) {
      const keys = SECRET_KEYS[source.secretRef.name];
      if (!keys) problems.push(`Secret ${source.secretRef.name} is not created by kube-bootstrap`);
      for (const key of keys ?? []) env[key] = SECRET_SAMPLE[key] ?? "sample";
    }
  }
  for (const entry of container.env ?? []) {
    if (entry.value !== undefined) env[entry.name] = String(entry.value);
    else if (entry.valueFrom?.secretKeyRef) env[entry.name] = SECRET_SAMPLE[entry.name] ?? "sample";
    else if (entry.valueFrom?.configMapKeyRef) {
      const ref = entry.valueFrom.configMapKeyRef;
      const value = (find(manifests, "ConfigMap", ref.name) as Any)?.data?.[ref.key];
      if (value === undefined) problems.push(`ConfigMap key ${ref.name}/${ref.key} is missing`);
      else env[entry.name] = String(value);
    } else if (entry.valueFrom?.fieldRef) env[entry.name] = "field";
  }
  return { env, problems };
}

/**
 * Each service container gets every variable the services need, and the values agree with the
 * manifests: the configuration parses as the services parse it (cql store, nats bus), listens
 * on all interfaces on the declared ports, and TOKEN_KEYS_FILE is a file of the mounted Secret.
 */
export function checkServiceEnvironment(manifests: readonly Manifest[], domain: string): string[] {
  const problems: string[] = [];
  for (const deployment of serviceDeployments(manifests)) {
    const pod = (deployment as Any).spec.template.spec;
    const container = pod.containers?.[0];
    const where = id(deployment);
    const { env, problems: refs } = containerEnv(manifests, container);
    problems.push(...refs.map((p) => `${where}: ${p}`));
    let config;
    try {
      // Parsed as the pod's own service parses it: its settings, its backends.
      const name = (deployment as Any).metadata?.name as string;
      config = parseConfig(env, CATALOG.filter((m) => m.name === name));
    } catch (error) {
      const detail = error instanceof ConfigError ? error.problems.join("; ") : String(error);
      problems.push(`${where}: the services reject this environment: ${detail}`);
      continue;
    }
    if (config.domain !== domain) problems.push(`${where}: DOMAIN is "${config.domain}"`);
    if (config.store.backend !== "cql") problems.push(`${where}: STORE_BACKEND must be cql`);
    if (config.bus.backend !== "nats") problems.push(`${where}: BUS_BACKEND must be nats`);
    if (config.store.backend === "cql" && config.store.username === undefined) {
      problems.push(`${where}: CQL_USERNAME/CQL_PASSWORD are not provided`);
    }
    if (config.bus.backend === "nats" && config.bus.token === undefined) {
      problems.push(`${where}: NATS_TOKEN is not provided`);
    }
    if (config.http.port !== portNumber(container, "http")) {
      problems.push(`${where}: HTTP_PORT ${config.http.port} is not the http container port`);
    }
    if (
      config.grpc.host !== "0.0.0.0" || config.metrics.host !== "0.0.0.0" ||
      config.http.host !== "0.0.0.0"
    ) {
      problems.push(`${where}: GRPC_HOST, HTTP_HOST and METRICS_HOST must be 0.0.0.0 in a pod`);
    }
    if (config.grpc.port !== portNumber(container, "grpc")) {
      problems.push(`${where}: GRPC_PORT ${config.grpc.port} is not the grpc container port`);
    }
    if (config.metrics.port !== portNumber(container, "metrics")) {
      problems.push(`${where}: METRICS_PORT ${config.metrics.port} is not the metrics port`);
    }
    if (!secretFileMounted(pod, container, config.tokens.keysFile ?? "")) {
      problems.push(
        `${where}: TOKEN_KEYS_FILE ${config.tokens.keysFile} is not a mounted Secret file`,
      );
    }
    const grace = pod.terminationGracePeriodSeconds ?? 30;
    if (grace * 1000 <= config.shutdownGraceMs) {
      problems.push(`${where}: terminationGracePeriodSeconds must exceed SHUTDOWN_GRACE_MS`);
    }
  }
  return problems;
}

function secretFileMounted(pod: Any, container: Any, path: string): boolean {
  for (const mount of container.volumeMounts ?? []) {
    const volume = (pod.volumes ?? []).find((v: Any) => v.name === mount.name);
    if (!volume?.secret) continue;
    const dir = String(mount.mountPath).replace(/\/$/, "");
    if (!path.startsWith(`${dir}/`)) continue;
    const file = path.slice(dir.length + 1);
    const keys = SECRET_KEYS[volume.secret.secretName] ?? [];
    const items: Any[] = volume.secret.items ?? keys.map((key) => ({ key, path: key }));
    if (items.some((item) => item.path === file && keys.includes(item.key))) return true;
  }
  return false;
}

/** Every referenced Secret and key exists in kube-bootstrap's set; no env secret is inlined. */
export function checkSecrets(manifests: readonly Manifest[]): string[] {
  const problems: string[] = [];
  for (const m of manifests) {
    if (kindOf(m) === "Secret") problems.push(`Secret/${nameOf(m)} is embedded in the manifests`);
    if (kindOf(m) === "ConfigMap") {
      for (const key of Object.keys((m as Any).data ?? {})) {
        if (SECRET_NAME.test(key)) problems.push(`ConfigMap/${nameOf(m)} holds secret-like ${key}`);
      }
    }
  }
  const refer = (where: string, name: string, key?: string) => {
    const keys = SECRET_KEYS[name];
    if (!keys) {
      if (!EXTERNAL_SECRETS.includes(name)) problems.push(`${where}: unknown Secret ${name}`);
    } else if (key !== undefined && !keys.includes(key)) {
      problems.push(`${where}: Secret ${name} has no key ${key}`);
    }
  };
  for (const { manifest, pod } of workloads(manifests)) {
    const where = id(manifest);
    for (const volume of pod.volumes ?? []) {
      if (volume.secret) {
        refer(where, volume.secret.secretName);
        for (const item of volume.secret.items ?? []) {
          refer(where, volume.secret.secretName, item.key);
        }
      }
    }
    for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])]) {
      for (const source of c.envFrom ?? []) {
        if (source.secretRef) refer(where, source.secretRef.name);
      }
      for (const entry of c.env ?? []) {
        const ref = entry.valueFrom?.secretKeyRef;
        if (ref) refer(where, ref.name, ref.key);
        else if (SECRET_NAME.test(entry.name)) {
          problems.push(`${where}: ${entry.name} must come from a Secret, not a literal`);
        }
      }
    }
  }
  for (const m of manifests.filter((m) => kindOf(m) === "Ingress")) {
    for (const tls of (m as Any).spec?.tls ?? []) refer(id(m), tls.secretName);
  }
  return problems;
}

const SECRET_NAME = /PASSWORD|TOKEN$|SECRET|PRIVATE/i;

/** The ingress serves api.<domain> and routes every gRPC service to the service that owns it. */
export function checkIngress(
  manifests: readonly Manifest[],
  specs: readonly ServiceSpec[],
  domain: string,
): string[] {
  const ingress = find(manifests, "Ingress", INGRESS_NAME) as Any;
  if (!ingress) return [`Ingress ${INGRESS_NAME} is missing`];
  const problems: string[] = [];
  const rules: Any[] = ingress.spec?.rules ?? [];
  if (rules.length !== 1 || rules[0].host !== `api.${domain}`) {
    problems.push(`Ingress ${INGRESS_NAME}: expected one rule for host api.${domain}`);
  }
  for (const tls of ingress.spec?.tls ?? []) {
    for (const host of tls.hosts ?? []) {
      if (host !== `api.${domain}`) problems.push(`Ingress TLS host ${host} is not api.${domain}`);
    }
  }
  const paths: Any[] = rules[0]?.http?.paths ?? [];
  for (const spec of specs) {
    const service = find(manifests, "Service", spec.name) as Any;
    const ports = service?.spec?.ports ?? [];
    const httpPort = ports.find((p: Any) => p.name === "http");
    if (!httpPort || !ports.some((p: Any) => p.name === "grpc")) {
      problems.push(`Service ${spec.name} with http and grpc ports is missing`);
    }
    for (const grpcService of spec.grpcServices) {
      const path = paths.find((p) => p.path === `/${grpcService}`);
      const backend = path?.backend?.service;
      if (!path || path.pathType !== "Prefix" || backend?.name !== spec.name) {
        problems.push(`Ingress: /${grpcService} must route (Prefix) to Service ${spec.name}`);
      } else if (backend.port?.name !== "http" && backend.port?.number !== httpPort?.port) {
        // Clients reach the gRPC-Web/Connect listener; native gRPC stays in the cluster.
        problems.push(`Ingress: /${grpcService} must go to the http port of ${spec.name}`);
      }
    }
  }
  return problems;
}

/** Default deny, DNS, gRPC in to the services, services out to ScyllaDB and NATS only. */
export function checkNetworkPolicies(manifests: readonly Manifest[]): string[] {
  const policies = manifests.filter((m) => kindOf(m) === "NetworkPolicy") as Any[];
  const problems: string[] = [];
  const denyAll = policies.find((p) =>
    Object.keys(p.spec?.podSelector ?? { x: 1 }).length === 0 && !p.spec?.ingress &&
    !p.spec?.egress && ["Ingress", "Egress"].every((t) => p.spec?.policyTypes?.includes(t))
  );
  if (!denyAll) problems.push("NetworkPolicy: no default-deny policy for ingress and egress");
  const forApi = policies.filter((p) => p.spec?.podSelector?.matchLabels?.[COMPONENT] === "api");
  const accepts = (name: string, number: number) =>
    forApi.some((p) =>
      (p.spec?.ingress ?? []).some((rule: Any) =>
        (rule.ports ?? []).some((port: Any) => port.port === name || port.port === number)
      )
    );
  if (!accepts("grpc", 50051)) problems.push("NetworkPolicy: services accept no gRPC ingress");
  if (!accepts("http", 8080)) problems.push("NetworkPolicy: services accept no HTTP ingress");
  const egressTo = (target: string, port: number) =>
    forApi.some((p) =>
      (p.spec?.egress ?? []).some((rule: Any) =>
        (rule.to ?? []).some((peer: Any) => peer.podSelector?.matchLabels?.[NAME] === target) &&
        (rule.ports ?? []).some((entry: Any) => entry.port === port)
      )
    );
  if (!egressTo("scylla", 9042)) problems.push("NetworkPolicy: services cannot reach ScyllaDB");
  if (!egressTo("nats", 4222)) problems.push("NetworkPolicy: services cannot reach NATS");
  const dns = policies.some((p) =>
    Object.keys(p.spec?.podSelector ?? { x: 1 }).length === 0 &&
    (p.spec?.egress ?? []).some((rule: Any) =>
      (rule.ports ?? []).some((entry: Any) => entry.port === 53)
    )
  );
  if (!dns) problems.push("NetworkPolicy: pods cannot reach cluster DNS");
  return problems;
}

/** The migrate Job runs the migrate image with the services' store settings. */
export function checkSchemaJobs(manifests: readonly Manifest[]): string[] {
  const job = manifests.find((m) =>
    kindOf(m) === "Job" &&
    ((m as Any).spec?.template?.spec?.containers ?? []).some((c: Any) =>
      String(c.image).includes(MIGRATE_IMAGE)
    )
  ) as Any;
  if (!job) return [`no Job runs the ${MIGRATE_IMAGE} image`];
  const container = job.spec.template.spec.containers[0];
  const { env, problems } = containerEnv(manifests, container);
  if (env.STORE_BACKEND !== "cql" || !env.CQL_CONTACT_POINTS || !env.CQL_REPLICATION) {
    problems.push("migrate Job: needs STORE_BACKEND=cql, CQL_CONTACT_POINTS and CQL_REPLICATION");
  }
  if (!env.CQL_USERNAME || !env.CQL_PASSWORD) {
    problems.push("migrate Job: needs the CQL credentials");
  }
  return problems;
}

/** Production: at least two replicas under an HPA, spread per node, 3-node ScyllaDB and NATS. */
export function checkProduction(manifests: readonly Manifest[], specs: readonly ServiceSpec[]) {
  const problems: string[] = [];
  for (const spec of specs) {
    const deployment = find(manifests, "Deployment", spec.name) as Any;
    const hpa = find(manifests, "HorizontalPodAutoscaler", spec.name) as Any;
    if (!deployment) {
      problems.push(`Deployment ${spec.name} is missing`);
      continue;
    }
    const replicas = deployment.spec?.replicas;
    if (!hpa || hpa.spec?.scaleTargetRef?.name !== spec.name || !(hpa.spec?.minReplicas >= 2)) {
      problems.push(`${spec.name}: needs an HPA with minReplicas >= 2`);
    }
    if (replicas !== undefined) {
      problems.push(`${spec.name}: replicas must be left to the HPA (an apply would reset them)`);
    }
    const anti = deployment.spec?.template?.spec?.affinity?.podAntiAffinity
      ?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
    if (
      !anti.some((term: Any) =>
        term.topologyKey === "kubernetes.io/hostname" &&
        term.labelSelector?.matchLabels?.[NAME] === spec.name
      )
    ) problems.push(`${spec.name}: replicas need pod anti-affinity per node`);
  }
  for (const name of ["scylla", "nats"]) {
    const set = find(manifests, "StatefulSet", name) as Any;
    if (set?.spec?.replicas !== 3) problems.push(`StatefulSet ${name} must run 3 replicas`);
  }
  const config = manifests.find((m) =>
    kindOf(m) === "ConfigMap" && nameOf(m).startsWith("guardyn-config")
  ) as Any;
  if (config?.data?.NATS_REPLICAS !== "3") problems.push("NATS_REPLICAS must be 3");
  if (!/=3$/.test(config?.data?.CQL_REPLICATION ?? "")) {
    problems.push("CQL_REPLICATION must use replication factor 3");
  }
  return problems;
}

/** Single node for local: one replica each. */
export function checkLocal(manifests: readonly Manifest[]): string[] {
  const problems: string[] = [];
  for (const m of manifests) {
    if (["Deployment", "StatefulSet"].includes(kindOf(m)) && (m as Any).spec?.replicas !== 1) {
      problems.push(`${id(m)}: local runs one replica`);
    }
  }
  return problems;
}

/** Every check that applies to a render of `overlay` with `domain`. */
export function checkRendered(
  manifests: readonly Manifest[],
  specs: readonly ServiceSpec[],
  overlay: Overlay,
  domain: string,
): string[] {
  const deployed = new Set(serviceDeployments(manifests).map(nameOf));
  const missing = specs.filter((s) => !deployed.has(s.name)).map((s) => s.name);
  return [
    ...missing.map((name) => `service ${name} has no Deployment`),
    ...checkWorkloads(manifests),
    ...checkServiceEnvironment(manifests, domain),
    ...checkSecrets(manifests),
    ...checkIngress(manifests, specs, domain),
    ...checkNetworkPolicies(manifests),
    ...checkSchemaJobs(manifests),
    ...(overlay === "prod" ? checkProduction(manifests, specs) : checkLocal(manifests)),
  ];
}

const FILE_EXTENSIONS = new Set(["conf", "env", "yaml", "yml", "json", "sh", "cql", "pid", "ts"]);
const API_GROUP_SUFFIXES = ["kubernetes.io", "k8s.io"];
/** Values of these fields are field paths, URL paths or image references, not host names. */
const SKIPPED_FIELDS = new Set([
  "apiVersion",
  "image",
  "newName",
  "fieldPath",
  "fieldPaths",
  "path",
  "mountPath",
]);

/**
 * Host names written literally in a source manifest value (map keys such as label names are
 * not values). Allowed: in-cluster names (<pod>.<service>, *.svc, *.cluster.local), Kubernetes
 * API groups, file names, and the domain placeholder that components/domain replaces.
 */
export function domainLiterals(value: unknown, internalNames: ReadonlySet<string>): string[] {
  const found: string[] = [];
  const visit = (node: unknown, field: string) => {
    if (SKIPPED_FIELDS.has(field)) return;
    if (typeof node === "string") {
      for (const token of node.split(/[^A-Za-z0-9.-]+/)) {
        if (isPublicHostLiteral(token, internalNames)) found.push(token);
      }
    } else if (Array.isArray(node)) node.forEach((item) => visit(item, field));
    else if (node && typeof node === "object") {
      for (const [key, child] of Object.entries(node)) visit(child, key);
    }
  };
  visit(value, "");
  return found;
}

function isPublicHostLiteral(token: string, internalNames: ReadonlySet<string>): boolean {
  const labels = token.replace(/^\.+|\.+$/g, "").split(".");
  if (labels.length < 2 || labels.some((l) => !/^[A-Za-z0-9-]+$/.test(l))) return false;
  const last = labels[labels.length - 1]!;
  if (!/^[A-Za-z]{2,63}$/.test(last)) return false; // IPs, versions, quantities
  if (last === DOMAIN_PLACEHOLDER) return false;
  const lower = labels.join(".").toLowerCase();
  if (FILE_EXTENSIONS.has(last.toLowerCase())) return false;
  if (internalNames.has(last.toLowerCase())) return false;
  if (/(^|\.)svc$|(^|\.)svc\.cluster\.local$|(^|\.)cluster\.local$/.test(lower)) return false;
  if (API_GROUP_SUFFIXES.some((s) => lower === s || lower.endsWith(`.${s}`))) return false;
  return true;
}

/** Lines of a .env/.conf file without comments, for the same scan as YAML values. */
export function configFileValues(text: string): string[] {
  return text.split("\n").map((line) => line.replace(/#.*$/, "").trim()).filter((l) => l !== "");
}
