import { assert, assertEquals, assertMatch, assertRejects } from "../tests/assert.ts";
import { parseK3dConfig } from "./kube_cli.ts";
import {
  findKustomize,
  MissingToolsError,
  pathWhich,
  requireTools,
  type Which,
} from "./kube_tools.ts";
import {
  formatReport,
  parseK3dClusters,
  portBusy,
  type PreflightFacts,
  preflightReport,
} from "./preflight.ts";
import { ROOT } from "./kube_test_kit.ts";

const cluster = parseK3dConfig(await Deno.readTextFile(`${ROOT}/infra/k3d-config.yaml`));

function facts(overrides: Partial<PreflightFacts> = {}): PreflightFacts {
  return {
    tools: {
      k3d: "/usr/bin/k3d",
      kubectl: "/usr/bin/kubectl",
      kustomize: "/usr/bin/kustomize",
      docker: "/usr/bin/docker",
    },
    enginesUp: ["docker"],
    domain: "guardyn.localhost",
    cluster,
    busyPorts: [],
    clusterExists: false,
    ...overrides,
  };
}

Deno.test("preflight: a ready machine passes", () => {
  const report = preflightReport(facts());
  assert(report.ok, formatReport(report));
  assertMatch(formatReport(report), /ready for deno task kube-create/);
  assertEquals(report.checks.filter((c) => c.name.startsWith("port ")).length, 4);
});

Deno.test("preflight: missing tools are named with what they do and how to install them", () => {
  const report = preflightReport(facts({ tools: { docker: "/usr/bin/docker" }, enginesUp: [] }));
  assert(!report.ok);
  const text = formatReport(report);
  assertMatch(text, /MISSING {2}k3d .*creates the local Kubernetes cluster/);
  assertMatch(text, /-> install k3d: /);
  assertMatch(text, /MISSING {2}kubectl /);
  assertMatch(text, /MISSING {2}kustomize .*\n.*go install sigs.k8s.io\/kustomize/);
  assertMatch(text, /MISSING {2}container builder {2}docker installed, but no engine answers/);
  assertMatch(text, /`docker info` works/);
  assertMatch(text, /4 problem\(s\) to fix first/);
  // kubectl's built-in kustomize is enough.
  const builtIn = preflightReport(
    facts({
      tools: { k3d: "k", kubectl: "/bin/kubectl", podman: "/bin/podman" },
      enginesUp: ["podman"],
    }),
  );
  assert(builtIn.ok, formatReport(builtIn));
  assertMatch(formatReport(builtIn), /kustomize +\/bin\/kubectl kustomize/);
});

Deno.test("preflight: DOMAIN must be set and valid", () => {
  const unset = preflightReport(facts({ domain: undefined }));
  assertMatch(formatReport(unset), /MISSING {2}DOMAIN .*DOMAIN is not set/);
  const bad = preflightReport(facts({ domain: "under_score.example" }));
  assertMatch(formatReport(bad), /must be a DNS name/);
  assertMatch(formatReport(preflightReport(facts())), /api.guardyn.localhost/);
});

Deno.test("preflight: busy ports fail unless the existing cluster holds them", () => {
  const busy = preflightReport(facts({ busyPorts: [8080] }));
  assertMatch(formatReport(busy), /MISSING {2}port 8080 .*already in use\n.*free port 8080/);
  const held = preflightReport(facts({ busyPorts: [8080, 6550], clusterExists: true }));
  assert(held.ok, formatReport(held));
  assertMatch(formatReport(held), /in use by the existing cluster guardyn/);
});

Deno.test("preflight: port probing and k3d cluster listing", () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  try {
    assert(portBusy(port));
  } finally {
    listener.close();
  }
  assert(!portBusy(port));
  assertEquals(parseK3dClusters('[{"name":"guardyn","servers":1},{"name":"other"}]'), [
    "guardyn",
    "other",
  ]);
  assertEquals(parseK3dClusters(""), []);
});

Deno.test("tools: lookup on PATH and in the cache, kustomize fallback, one error for all missing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "guardyn-tools-" });
  try {
    await Deno.mkdir(`${dir}/path`);
    await Deno.mkdir(`${dir}/cache/bin`, { recursive: true });
    await Deno.writeTextFile(`${dir}/path/kubectl`, "#!/bin/sh\n", { mode: 0o755 });
    await Deno.writeTextFile(`${dir}/path/k3d`, "not executable", { mode: 0o644 });
    await Deno.writeTextFile(`${dir}/cache/bin/kustomize`, "#!/bin/sh\n", { mode: 0o755 });
    const which = pathWhich({ PATH: `${dir}/path`, GUARDYN_CACHE: `${dir}/cache` });
    assertEquals(await which("kubectl"), `${dir}/path/kubectl`);
    assertEquals(await which("k3d"), undefined);
    assertEquals(await which("kustomize"), `${dir}/cache/bin/kustomize`);
    assertEquals(await findKustomize(which), {
      command: `${dir}/cache/bin/kustomize`,
      args: ["build"],
    });
    const onlyKubectl: Which = (c) => Promise.resolve(c === "kubectl" ? "/bin/kubectl" : undefined);
    assertEquals(await findKustomize(onlyKubectl), {
      command: "/bin/kubectl",
      args: ["kustomize"],
    });
    await assertRejects(
      () => requireTools(["kubectl", "k3d", "docker"], which, "kube-create"),
      MissingToolsError,
    );
    const error = await requireTools(["k3d", "docker"], which, "kube-create").catch((e) => e);
    assertMatch(
      error.message,
      /kube-create needs tools that are not installed:\n {2}- k3d: .*\n {4}install: .*\n {2}- docker: /,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
