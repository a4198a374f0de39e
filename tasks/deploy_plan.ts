/**
 * The deploy plan, as a pure function of the rendered manifests: what is applied and awaited,
 * in which order. Services refuse an unmigrated schema, so the order is fixed:
 *   1. the Secrets kube-bootstrap makes must exist;
 *   2. foundation: namespace, config, network policies, ScyllaDB, NATS, the S3 gateway
 *      (StatefulSets) and the TURN relay (a Deployment);
 *   3. wait for those to be rolled out;
 *   4. the schema Jobs, one at a time in guardyn.dev/run-order (scylla-auth, then migrate);
 *   5. the services: Deployments, Services, PDBs, HPAs, the ingress;
 *   6. wait for every service Deployment to be rolled out and ready.
 */

import type { Manifest } from "./kube_manifests.ts";
import { SECRET_KEYS } from "./kube_manifests.ts";
import { kindOf, labelsOf, nameOf } from "./kube_checks.ts";

export type DeployStep =
  | { kind: "check-secrets"; names: string[] }
  | { kind: "apply"; phase: "foundation" | "services"; manifests: Manifest[] }
  | { kind: "rollout"; resource: string; timeoutSeconds: number }
  | { kind: "run-job"; name: string; manifest: Manifest; timeoutSeconds: number };

export interface PlanOptions {
  /** How long a StatefulSet or Deployment rollout may take. */
  rolloutTimeoutSeconds: number;
  /** How long one schema Job may take. */
  jobTimeoutSeconds: number;
}

export const DEFAULT_PLAN_OPTIONS: PlanOptions = {
  rolloutTimeoutSeconds: 600,
  jobTimeoutSeconds: 900,
};

const SERVICE_KINDS = new Set([
  "Deployment",
  "Service",
  "PodDisruptionBudget",
  "HorizontalPodAutoscaler",
]);
const RUN_ORDER = "guardyn.dev/run-order";

/** Resources that belong to the services phase (component=api, and the ingress). */
export function isServicePhase(manifest: Manifest): boolean {
  if (kindOf(manifest) === "Ingress") return true;
  return SERVICE_KINDS.has(kindOf(manifest)) &&
    labelsOf(manifest)["app.kubernetes.io/component"] === "api";
}

function runOrder(job: Manifest): number {
  // deno-lint-ignore no-explicit-any
  const raw = (job as any).metadata?.annotations?.[RUN_ORDER];
  const order = Number(raw);
  if (raw === undefined || !Number.isInteger(order) || order < 1) {
    throw new Error(`Job ${nameOf(job)} needs a ${RUN_ORDER} annotation (1, 2, ...)`);
  }
  return order;
}

export function planDeploy(
  manifests: readonly Manifest[],
  options: PlanOptions = DEFAULT_PLAN_OPTIONS,
): DeployStep[] {
  const jobs = manifests.filter((m) => kindOf(m) === "Job");
  const orders = jobs.map(runOrder);
  if (new Set(orders).size !== orders.length) throw new Error(`two Jobs share a ${RUN_ORDER}`);
  const rest = manifests.filter((m) => kindOf(m) !== "Job");
  const foundation = rest.filter((m) => !isServicePhase(m));
  const services = rest.filter(isServicePhase);
  // Databases, the bus, the S3 gateway and the TURN relay: ready before the schema Jobs.
  const workloads = foundation.filter((m) => ["StatefulSet", "Deployment"].includes(kindOf(m)));
  const deployments = services.filter((m) => kindOf(m) === "Deployment");
  if (deployments.length === 0) throw new Error("the render has no service Deployment");
  // The namespace goes first inside its phase so namespaced objects can be created.
  foundation.sort((a, b) => Number(kindOf(b) === "Namespace") - Number(kindOf(a) === "Namespace"));
  return [
    { kind: "check-secrets", names: Object.keys(SECRET_KEYS) },
    { kind: "apply", phase: "foundation", manifests: foundation },
    ...workloads.map((m): DeployStep => ({
      kind: "rollout",
      resource: `${kindOf(m).toLowerCase()}/${nameOf(m)}`,
      timeoutSeconds: options.rolloutTimeoutSeconds,
    })),
    ...jobs
      .map((job) => ({ job, order: runOrder(job) }))
      .sort((a, b) => a.order - b.order)
      .map(({ job }): DeployStep => ({
        kind: "run-job",
        name: nameOf(job),
        manifest: job,
        timeoutSeconds: options.jobTimeoutSeconds,
      })),
    { kind: "apply", phase: "services", manifests: services },
    ...deployments.map((m): DeployStep => ({
      kind: "rollout",
      resource: `deployment/${nameOf(m)}`,
      timeoutSeconds: options.rolloutTimeoutSeconds,
    })),
  ];
}

export function describeStep(step: DeployStep): string {
  switch (step.kind) {
    case "check-secrets":
      return `check Secrets exist: ${step.names.join(", ")}`;
    case "apply":
      return `apply ${step.phase}: ${
        step.manifests.map((m) => `${kindOf(m)}/${nameOf(m)}`).join(", ")
      }`;
    case "rollout":
      return `wait for ${step.resource} rollout (up to ${step.timeoutSeconds} s)`;
    case "run-job":
      return `run Job ${step.name} to completion (up to ${step.timeoutSeconds} s)`;
  }
}

export type JobState = "complete" | "failed" | "running";

/** A Job's state from its status conditions (kubectl get job -o json). */
export function jobState(job: unknown): JobState {
  // deno-lint-ignore no-explicit-any
  const conditions: any[] = (job as any)?.status?.conditions ?? [];
  const isTrue = (type: string) => conditions.some((c) => c.type === type && c.status === "True");
  if (isTrue("Failed")) return "failed";
  if (isTrue("Complete")) return "complete";
  return "running";
}

/** Names from `kubectl get secrets -o name` that the plan needs but the cluster lacks. */
export function missingSecrets(needed: readonly string[], existing: ReadonlySet<string>) {
  return needed.filter((name) => !existing.has(name));
}
