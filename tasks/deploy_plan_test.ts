import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { kindOf, nameOf } from "./kube_checks.ts";
import { parseK3dConfig } from "./kube_cli.ts";
import { SECRET_KEYS } from "./kube_manifests.ts";
import { chooseImages, parseBuildRecord } from "./deploy.ts";
import {
  DEFAULT_PLAN_OPTIONS,
  type DeployStep,
  describeStep,
  jobState,
  missingSecrets,
  planDeploy,
} from "./deploy_plan.ts";
import { catalog, copy, render, ROOT } from "./kube_test_kit.ts";

const summary = (step: DeployStep) =>
  step.kind === "apply"
    ? `apply ${step.phase}`
    : step.kind === "rollout"
    ? `rollout ${step.resource}`
    : step.kind === "run-job"
    ? `job ${step.name}`
    : "check-secrets";

for (const overlay of ["local", "prod"] as const) {
  Deno.test(`deploy plan (${overlay}): secrets, foundation, databases, schema Jobs, services, rollouts`, async () => {
    const { manifests } = await render(overlay);
    const plan = planDeploy(manifests);
    assertEquals(plan.map(summary), [
      "check-secrets",
      "apply foundation",
      "rollout deployment/turn",
      "rollout statefulset/nats",
      "rollout statefulset/s3",
      "rollout statefulset/scylla",
      "job scylla-auth",
      "job guardyn-migrate",
      "apply services",
      ...(await catalog()).map((spec) => `rollout deployment/${spec.name}`).sort(),
    ]);
    const [check, foundation] = plan;
    const services = plan.find((s) => s.kind === "apply" && s.phase === "services");
    assert(check?.kind === "check-secrets");
    assertEquals(check.names, Object.keys(SECRET_KEYS));
    assert(foundation?.kind === "apply" && services?.kind === "apply");
    assertEquals(kindOf(foundation.manifests[0]!), "Namespace");
    const foundationKinds = new Set(foundation.manifests.map(kindOf));
    assert(!foundationKinds.has("Job"));
    // The only Deployment before the services is the TURN relay (no schema needed).
    const early = foundation.manifests.filter((m) => kindOf(m) === "Deployment").map(nameOf);
    assertEquals(early, ["turn"]);
    assert(!foundationKinds.has("Ingress"));
    assert(foundationKinds.has("NetworkPolicy") && foundationKinds.has("StatefulSet"));
    const serviceKinds = services.manifests.map((m) => `${kindOf(m)}/${nameOf(m)}`);
    for (const name of ["Deployment/auth", "Deployment/messaging", "Ingress/guardyn-api"]) {
      assert(serviceKinds.includes(name), `${name} not in the services phase`);
    }
    // Every rendered object is applied exactly once (Jobs by their run step).
    const applied = plan.flatMap((s) =>
      s.kind === "apply" ? s.manifests : s.kind === "run-job" ? [s.manifest] : []
    );
    assertEquals(applied.length, manifests.length);
    if (overlay === "prod") assert(serviceKinds.includes("HorizontalPodAutoscaler/auth"));
    for (const step of plan) assert(describeStep(step).length > 10);
  });
}

Deno.test("deploy plan: Jobs need a distinct run order", async () => {
  const manifests = copy((await render("local")).manifests);
  const migrate = manifests.find((m) => nameOf(m) === "guardyn-migrate")!;
  // deno-lint-ignore no-explicit-any
  (migrate as any).metadata.annotations["guardyn.dev/run-order"] = "1";
  assertThrows(() => planDeploy(manifests), /two Jobs share a guardyn.dev\/run-order/);
  // deno-lint-ignore no-explicit-any
  delete (migrate as any).metadata.annotations;
  assertThrows(() => planDeploy(manifests), /Job guardyn-migrate needs a guardyn.dev\/run-order/);
  const noServices = manifests.filter((m) => kindOf(m) !== "Deployment" && kindOf(m) !== "Job");
  assertThrows(() => planDeploy(noServices), /no service Deployment/);
  const timeouts = planDeploy((await render("local")).manifests, {
    ...DEFAULT_PLAN_OPTIONS,
    jobTimeoutSeconds: 42,
  });
  assert(timeouts.some((s) => s.kind === "run-job" && s.timeoutSeconds === 42));
});

Deno.test("deploy plan: job states and missing secrets", () => {
  assertEquals(jobState({ status: {} }), "running");
  assertEquals(
    jobState({ status: { conditions: [{ type: "Complete", status: "True" }] } }),
    "complete",
  );
  assertEquals(
    jobState({ status: { conditions: [{ type: "Failed", status: "True" }] } }),
    "failed",
  );
  assertEquals(
    jobState({ status: { conditions: [{ type: "Complete", status: "False" }] } }),
    "running",
  );
  assertEquals(missingSecrets(["a", "b", "c"], new Set(["b"])), ["a", "c"]);
});

Deno.test("deploy: image registry and tag come from flags, environment or the last build", async () => {
  const local = parseK3dConfig(await Deno.readTextFile(`${ROOT}/infra/k3d-config.yaml`));
  const build = parseBuildRecord(
    '{"registry": "k3d-guardyn-registry.localhost:5111", "tag": "git-abc1234"}',
  );
  assertEquals(chooseImages("local", {}, {}, local, build), {
    registry: "k3d-guardyn-registry.localhost:5111",
    tag: "git-abc1234",
  });
  assertEquals(chooseImages("local", { tag: "t1" }, { IMAGE_TAG: "t2" }, local, build).tag, "t1");
  assertEquals(chooseImages("local", {}, { IMAGE_TAG: "t2" }, local, build).tag, "t2");
  assertThrows(
    () => chooseImages("local", {}, {}, local, undefined),
    /run `deno task build` first/,
  );
  assertThrows(() => chooseImages("prod", {}, { IMAGE_TAG: "v1" }, local, build), /--registry/);
  assertThrows(
    () => chooseImages("prod", { registry: "registry.test/guardyn" }, {}, local, build),
    /needs --tag or IMAGE_TAG/,
  );
  assertThrows(
    () => chooseImages("prod", { registry: "registry.test", tag: "latest" }, {}, local, undefined),
    /mutable tag latest/,
  );
  assertThrows(() => parseBuildRecord("{}"), /registry and tag/);
});
