/**
 * The policy checks catch what they claim to: each test breaks one rule in a real render and
 * expects the problem to be reported (the passing renders are in kube_render_test.ts).
 */

import { assert, assertEquals } from "../tests/assert.ts";
import {
  checkIngress,
  checkNetworkPolicies,
  checkProduction,
  checkRendered,
  checkSchemaJobs,
  checkSecrets,
  checkServiceEnvironment,
  checkWorkloads,
  find,
  kindOf,
  nameOf,
  serviceDeployments,
} from "./kube_checks.ts";
import type { Manifest } from "./kube_manifests.ts";
import { catalog, copy, render, TEST_DOMAIN } from "./kube_test_kit.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

async function local(): Promise<Manifest[]> {
  return copy((await render("local")).manifests);
}

function container(manifests: Manifest[], name: string): Any {
  return (find(manifests, "Deployment", name) as Any).spec.template.spec.containers[0];
}

function configMap(manifests: Manifest[]): Any {
  return manifests.find((m) => kindOf(m) === "ConfigMap" && nameOf(m).startsWith("guardyn-config"));
}

function expectProblem(problems: string[], pattern: RegExp) {
  assert(problems.some((p) => pattern.test(p)), `expected ${pattern} in:\n${problems.join("\n")}`);
}

Deno.test("checks: probes, resources and the security context are required", async () => {
  const manifests = await local();
  const auth = container(manifests, "auth");
  delete auth.readinessProbe;
  delete auth.resources.requests.cpu;
  auth.securityContext.readOnlyRootFilesystem = false;
  auth.securityContext.capabilities.drop = [];
  container(manifests, "messaging").livenessProbe = { tcpSocket: { port: 9464 } };
  (find(manifests, "Deployment", "messaging") as Any).spec.template.spec.securityContext = {};
  const problems = checkWorkloads(manifests);
  expectProblem(problems, /Deployment\/auth container server: needs readinessProbe/);
  expectProblem(problems, /Deployment\/auth container server: resources.requests needs cpu/);
  expectProblem(problems, /Deployment\/auth container server: readOnlyRootFilesystem/);
  expectProblem(problems, /Deployment\/auth container server: capabilities.drop must include ALL/);
  expectProblem(problems, /Deployment\/messaging container server: livenessProbe must be GET/);
  expectProblem(problems, /Deployment\/messaging: pod securityContext.seccompProfile/);
  expectProblem(problems, /Deployment\/messaging: pod securityContext.runAsNonRoot/);
});

Deno.test("checks: a readiness probe must be gRPC health or /readyz", async () => {
  const manifests = await local();
  container(manifests, "auth").readinessProbe = { grpc: { port: 50051 } };
  assertEquals(checkWorkloads(manifests), []);
  container(manifests, "auth").readinessProbe = { httpGet: { path: "/", port: "metrics" } };
  expectProblem(checkWorkloads(manifests), /readinessProbe must be grpc .* or GET \/readyz/);
});

Deno.test("checks: every variable the services need is provided and consistent", async () => {
  const manifests = await local();
  const config = configMap(manifests);
  delete config.data.CQL_CONTACT_POINTS;
  config.data.GRPC_PORT = "50052";
  config.data.TOKEN_KEYS_FILE = "/etc/guardyn/keys.json";
  config.data.GRPC_HOST = "127.0.0.1";
  const problems = checkServiceEnvironment(manifests, TEST_DOMAIN);
  expectProblem(problems, /CQL_CONTACT_POINTS is required/);
  const fresh = await local();
  const map = configMap(fresh);
  map.data.GRPC_PORT = "50052";
  map.data.TOKEN_KEYS_FILE = "/etc/guardyn/keys.json";
  map.data.GRPC_HOST = "127.0.0.1";
  const more = checkServiceEnvironment(fresh, TEST_DOMAIN);
  expectProblem(more, /GRPC_PORT 50052 is not the grpc container port/);
  expectProblem(more, /TOKEN_KEYS_FILE \/etc\/guardyn\/keys.json is not a mounted Secret file/);
  expectProblem(more, /GRPC_HOST, HTTP_HOST and METRICS_HOST must be 0.0.0.0/);
  expectProblem(checkServiceEnvironment(await local(), "other.example.org"), /DOMAIN is/);
});

Deno.test("checks: the secrets the services read must come from kube-bootstrap's Secrets", async () => {
  const manifests = await local();
  const auth = container(manifests, "auth");
  auth.envFrom = auth.envFrom.filter((source: Any) => source.secretRef?.name !== "guardyn-nats");
  expectProblem(checkServiceEnvironment(manifests, TEST_DOMAIN), /NATS_TOKEN is not provided/);
});

Deno.test("checks: secrets are referenced, never embedded", async () => {
  const manifests = await local();
  manifests.push({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "inline" },
    stringData: { NATS_TOKEN: "x" },
  });
  container(manifests, "auth").env = [{ name: "CQL_PASSWORD", value: "hunter2hunter2" }];
  configMap(manifests).data.NATS_TOKEN = "abc";
  container(manifests, "messaging").envFrom.push({ secretRef: { name: "not-bootstrapped" } });
  const problems = checkSecrets(manifests);
  expectProblem(problems, /Secret\/inline is embedded/);
  expectProblem(problems, /CQL_PASSWORD must come from a Secret/);
  expectProblem(problems, /ConfigMap\/guardyn-config-[a-z0-9]+ holds secret-like NATS_TOKEN/);
  expectProblem(problems, /unknown Secret not-bootstrapped/);
  const volumes = (find(manifests, "Deployment", "auth") as Any).spec.template.spec.volumes;
  volumes[0].secret.items[0].key = "other.json";
  expectProblem(checkSecrets(manifests), /Secret guardyn-token-keys has no key other.json/);
});

Deno.test("checks: the ingress routes every gRPC service of the catalog", async () => {
  const manifests = await local();
  const specs = await catalog();
  const ingress = find(manifests, "Ingress", "guardyn-api") as Any;
  ingress.spec.rules[0].http.paths = ingress.spec.rules[0].http.paths.filter((p: Any) =>
    p.path !== "/guardyn.v1.MessagingService"
  );
  ingress.spec.rules[0].host = "api.elsewhere.example";
  const problems = checkIngress(manifests, specs, TEST_DOMAIN);
  expectProblem(
    problems,
    /\/guardyn.v1.MessagingService must route \(Prefix\) to Service messaging/,
  );
  expectProblem(problems, /expected one rule for host api.chat.example.org/);
});

Deno.test("checks: network policies deny by default and open only the needed flows", async () => {
  const manifests = (await local()).filter((m) =>
    !(kindOf(m) === "NetworkPolicy" && ["default-deny", "api-egress"].includes(nameOf(m)))
  );
  const problems = checkNetworkPolicies(manifests);
  expectProblem(problems, /no default-deny/);
  expectProblem(problems, /cannot reach ScyllaDB/);
  expectProblem(problems, /cannot reach NATS/);
});

Deno.test("checks: the migrate Job must exist with the store settings", async () => {
  const manifests = (await local()).filter((m) => nameOf(m) !== "guardyn-migrate");
  assertEquals(checkSchemaJobs(manifests), ["no Job runs the guardyn-migrate image"]);
});

Deno.test("checks: production needs HPAs, spread, and three database and bus nodes", async () => {
  const manifests = copy((await render("prod")).manifests);
  const specs = await catalog();
  (find(manifests, "Deployment", "auth") as Any).spec.replicas = 2;
  (find(manifests, "HorizontalPodAutoscaler", "messaging") as Any).spec.minReplicas = 1;
  delete (find(manifests, "Deployment", "messaging") as Any).spec.template.spec.affinity;
  (find(manifests, "StatefulSet", "scylla") as Any).spec.replicas = 1;
  configMap(manifests).data.NATS_REPLICAS = "1";
  const problems = checkProduction(manifests, specs);
  expectProblem(problems, /auth: replicas must be left to the HPA/);
  expectProblem(problems, /messaging: needs an HPA with minReplicas >= 2/);
  expectProblem(problems, /messaging: replicas need pod anti-affinity per node/);
  expectProblem(problems, /StatefulSet scylla must run 3 replicas/);
  expectProblem(problems, /NATS_REPLICAS must be 3/);
  // The local render is no production render.
  expectProblem(checkRendered(await local(), specs, "prod", TEST_DOMAIN), /needs an HPA/);
});

Deno.test("checks: a catalog service without a Deployment is reported", async () => {
  const manifests = await local();
  const specs = await catalog();
  const extra = { ...specs[0]!, name: "reports", grpcServices: ["guardyn.v1.ReportService"] };
  const problems = checkRendered(manifests, [...specs, extra], "local", TEST_DOMAIN);
  expectProblem(problems, /service reports has no Deployment/);
  assertEquals(serviceDeployments(manifests).map(nameOf).sort(), specs.map((s) => s.name).sort());
});
