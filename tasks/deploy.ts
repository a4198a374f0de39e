/**
 * `deno task deploy [--overlay local|prod] [--context NAME] [--registry R] [--tag T] [--dry-run]`
 *
 * Renders infra/k8s/overlays/<overlay> with DOMAIN from the environment, refuses a render that
 * fails the policy checks (tasks/kube_checks.ts), then runs the plan of tasks/deploy_plan.ts
 * with kubectl: foundation, ScyllaDB/NATS rollout, schema Jobs, services, service rollouts.
 *
 * Images: local pulls from the k3d registry (infra/k3d-config.yaml) with the tag that
 * `deno task build` recorded in dist/images.json; prod needs --registry/IMAGE_REGISTRY and
 * --tag/IMAGE_TAG. `--dry-run` prints the plan (and with --print the rendered YAML) only.
 */

import { loadCatalog, repoRootFromHere, type ServiceSpec } from "./kube_catalog.ts";
import { checkRendered } from "./kube_checks.ts";
import {
  chooseContext,
  fail,
  loadLocalCluster,
  loadNamespace,
  type LocalCluster,
  parseFlags,
} from "./kube_cli.ts";
import { staleFiles } from "./kube_manifests.ts";
import {
  checkDomain,
  checkImageSettings,
  type ImageSettings,
  type Overlay,
  parseOverlay,
  renderOverlay,
} from "./kube_render.ts";
import {
  findKustomize,
  MissingToolsError,
  pathWhich,
  requireTools,
  run,
  runChecked,
} from "./kube_tools.ts";
import {
  DEFAULT_PLAN_OPTIONS,
  type DeployStep,
  describeStep,
  jobState,
  missingSecrets,
  planDeploy,
} from "./deploy_plan.ts";
import { parseSecretNames } from "./kube_bootstrap.ts";
import { requireSignedRelease } from "./release.ts";
import { decryptSecrets, encryptedSecretsPath, secretsApplyPayload } from "./sops_secrets.ts";

/** What `deno task build` leaves in dist/images.json. */
export interface BuildRecord {
  registry: string;
  tag: string;
}

export function parseBuildRecord(text: string): BuildRecord {
  const data = JSON.parse(text) as Partial<BuildRecord>;
  if (typeof data.registry !== "string" || typeof data.tag !== "string") {
    throw new Error("dist/images.json must hold registry and tag");
  }
  return { registry: data.registry, tag: data.tag };
}

/**
 * Image registry and tag: flags, then IMAGE_REGISTRY/IMAGE_TAG, then (local only) the k3d
 * registry and the tag of the last build.
 */
export function chooseImages(
  overlay: Overlay,
  flags: { registry?: string; tag?: string },
  env: Record<string, string | undefined>,
  local: LocalCluster,
  lastBuild: BuildRecord | undefined,
): ImageSettings {
  const registry = flags.registry ?? env.IMAGE_REGISTRY?.trim() ??
    (overlay === "local" ? local.registry.inCluster : undefined);
  if (!registry) {
    throw new Error("the prod overlay needs --registry or IMAGE_REGISTRY (where the images are)");
  }
  const fromBuild = lastBuild && overlay === "local" ? lastBuild.tag : undefined;
  const tag = flags.tag ?? env.IMAGE_TAG?.trim() ?? fromBuild;
  if (!tag) {
    throw new Error(
      overlay === "local"
        ? "no image tag: run `deno task build` first (it records dist/images.json) or pass --tag"
        : "the prod overlay needs --tag or IMAGE_TAG (an immutable tag, never latest)",
    );
  }
  if (overlay === "prod" && tag === "latest") throw new Error("refusing the mutable tag latest");
  return checkImageSettings({ registry, tag });
}

interface Kube {
  kubectl: string;
  context: string;
  namespace: string;
}

const POLL_MS = 3_000;

async function kubectl(kube: Kube, args: string[], stdin?: string): Promise<string> {
  return await runChecked(
    kube.kubectl,
    ["--context", kube.context, "-n", kube.namespace, ...args],
    {
      stdin,
    },
  );
}

async function runJob(kube: Kube, step: Extract<DeployStep, { kind: "run-job" }>) {
  // Jobs are immutable: the previous run goes first, then this one starts fresh.
  await kubectl(kube, ["delete", "job", step.name, "--ignore-not-found", "--wait=true"]);
  await kubectl(kube, ["apply", "-f", "-"], JSON.stringify(step.manifest));
  const deadline = Date.now() + step.timeoutSeconds * 1000;
  while (Date.now() < deadline) {
    const state = jobState(
      JSON.parse(await kubectl(kube, ["get", "job", step.name, "-o", "json"])),
    );
    if (state === "complete") return;
    if (state === "failed") break;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  const logs = await run(kube.kubectl, [
    "--context",
    kube.context,
    "-n",
    kube.namespace,
    "logs",
    `job/${step.name}`,
    "--tail=60",
  ]);
  throw new Error(
    `Job ${step.name} did not complete within ${step.timeoutSeconds} s or failed; last log lines:\n` +
      (logs.stdout || logs.stderr).trim(),
  );
}

async function execute(kube: Kube, step: DeployStep): Promise<void> {
  switch (step.kind) {
    case "check-secrets": {
      const listed = await kubectl(kube, ["get", "secrets", "-o", "name"]).catch((error) => {
        throw new Error(
          `cannot list Secrets in namespace ${kube.namespace} (run deno task kube-bootstrap ` +
            `first): ${(error as Error).message}`,
        );
      });
      const existing = parseSecretNames(listed);
      const missing = missingSecrets(step.names, existing);
      if (missing.length > 0) {
        throw new Error(
          `Secrets missing in ${kube.namespace}: ${
            missing.join(", ")
          }; run deno task kube-bootstrap`,
        );
      }
      return;
    }
    case "apply": {
      const list = { apiVersion: "v1", kind: "List", items: step.manifests };
      // --context without -n: every object carries its namespace (the Namespace has none).
      await runChecked(kube.kubectl, ["--context", kube.context, "apply", "-f", "-"], {
        stdin: JSON.stringify(list),
      });
      return;
    }
    case "rollout":
      await kubectl(kube, [
        "rollout",
        "status",
        step.resource,
        `--timeout=${step.timeoutSeconds}s`,
      ]);
      return;
    case "run-job":
      await runJob(kube, step);
      return;
  }
}

async function readBuildRecord(root: string): Promise<BuildRecord | undefined> {
  try {
    return parseBuildRecord(await Deno.readTextFile(`${root}/dist/images.json`));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`dist/images.json: ${(error as Error).message}`);
  }
}

/**
 * The overlay's SOPS-encrypted Secrets (infra/secrets/<overlay>.enc.yaml), when the repository
 * has them: decrypted in memory with SOPS_AGE_KEY_FILE and applied through kubectl's stdin, so
 * no plaintext touches the disk. Without the file, kube-bootstrap's Secrets must exist.
 */
async function applyEncryptedSecrets(
  kube: Kube,
  root: string,
  overlay: string,
  ageKeyFile: string | undefined,
): Promise<void> {
  const file = `${root}/${encryptedSecretsPath(overlay)}`;
  if (!(await Deno.stat(file).then(() => true, () => false))) return;
  const sops = await pathWhich()("sops");
  if (!sops) throw new MissingToolsError(["sops"], "deploy");
  const secrets = await decryptSecrets(sops, file, ageKeyFile);
  await kubectl(kube, ["apply", "-f", "-"], secretsApplyPayload(secrets, kube.namespace));
  console.log(
    `deploy: applied ${secrets.length} Secret(s) from ${encryptedSecretsPath(overlay)} ` +
      "(decrypted in memory; values not printed)",
  );
}

async function main() {
  const flags = parseFlags(Deno.args, {
    options: ["overlay", "context", "registry", "tag"],
    switches: ["dry-run", "print"],
  });
  const root = repoRootFromHere();
  const env = Deno.env.toObject();
  const overlay = parseOverlay(flags.options.overlay ?? "local");
  const domain = checkDomain(env.DOMAIN);
  if (overlay === "prod") {
    // Production deploys only a signed release (deno task release), verified here.
    await requireSignedRelease(
      `${root}/dist/release`,
      env.COSIGN_PUBLIC_KEY ?? `${root}/infra/release/cosign.pub`,
    );
    console.log("deploy: the release's signatures verify");
  }
  const local = await loadLocalCluster(root);
  const specs: ServiceSpec[] = loadCatalog();
  const stale = await staleFiles(root);
  if (stale.length > 0) {
    throw new Error(
      `generated manifests are stale (${stale.join(", ")}): run deno task kube-manifests`,
    );
  }
  const images = chooseImages(overlay, flags.options, env, local, await readBuildRecord(root));
  const which = pathWhich();
  const kustomize = await findKustomize(which);
  if (!kustomize) throw new MissingToolsError(["kustomize"], "deploy");
  const rendered = await renderOverlay({
    repoRoot: root,
    overlay,
    domain,
    specs,
    images,
    kustomize,
  });
  const problems = checkRendered(rendered.manifests, specs, overlay, domain);
  if (problems.length > 0) {
    throw new Error(
      `the rendered manifests fail the policy checks:\n  - ${problems.join("\n  - ")}`,
    );
  }
  const plan = planDeploy(rendered.manifests, DEFAULT_PLAN_OPTIONS);
  const context = chooseContext(overlay, flags.options.context, env, local);
  const namespace = await loadNamespace(root);
  console.log(
    `deploy: overlay ${overlay}, context ${context}, namespace ${namespace}, api.${domain}, ` +
      `images ${images.registry}/*:${images.tag}`,
  );
  if (flags.switches.has("print")) console.log(rendered.yaml);
  if (flags.switches.has("dry-run")) {
    plan.forEach((step, i) => console.log(`  ${i + 1}. ${describeStep(step)}`));
    return;
  }
  const { kubectl } = await requireTools(["kubectl"], which, "deploy") as { kubectl: string };
  const kube: Kube = { kubectl, context, namespace };
  await applyEncryptedSecrets(kube, root, overlay, env.SOPS_AGE_KEY_FILE);
  for (const [i, step] of plan.entries()) {
    const started = performance.now();
    console.log(`deploy: ${i + 1}/${plan.length} ${describeStep(step)}`);
    await execute(kube, step);
    console.log(`deploy:   done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  const services = plan.filter((s) => s.kind === "rollout" && s.resource.startsWith("deployment/"));
  console.log(
    `deploy: ${services.length} service(s) ready (${specs.map((s) => s.name).join(", ")}); ` +
      `next: deno task verify${overlay === "prod" ? ` --overlay prod --context ${context}` : ""}`,
  );
}

if (import.meta.main) await main().catch((error) => fail("deploy", error));
