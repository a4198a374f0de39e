import { assertEquals, assertThrows } from "../tests/assert.ts";
import { chooseContext, parseFlags, parseK3dConfig, parseNamespace } from "./kube_cli.ts";
import { decide } from "./teardown.ts";
import { ROOT } from "./kube_test_kit.ts";

const local = parseK3dConfig(await Deno.readTextFile(`${ROOT}/infra/k3d-config.yaml`));

Deno.test("cli: flags", () => {
  const flags = parseFlags(["--overlay", "prod", "--tag=v1", "--dry-run"], {
    options: ["overlay", "tag"],
    switches: ["dry-run"],
  });
  assertEquals(flags.options, { overlay: "prod", tag: "v1" });
  assertEquals([...flags.switches], ["dry-run"]);
  assertThrows(
    () => parseFlags(["--force"], { switches: ["yes"] }),
    /unknown flag --force \(known: --yes\)/,
  );
  assertThrows(() => parseFlags(["--tag"], { options: ["tag"] }), /--tag needs a value/);
  assertThrows(() => parseFlags(["prod"], {}), /unexpected argument "prod"/);
});

Deno.test("cli: the local cluster's settings come from infra/k3d-config.yaml", () => {
  assertEquals(local.name, "guardyn");
  assertEquals(local.context, "k3d-guardyn");
  assertEquals(local.hostPorts.map((p) => p.port), [6550, 8080, 8443, 5111]);
  assertEquals(local.registry, {
    inCluster: "k3d-guardyn-registry.localhost:5111",
    push: "localhost:5111",
  });
  assertThrows(() => parseK3dConfig("metadata: {name: Bad Name}"), /metadata.name/);
});

Deno.test("cli: the namespace comes from the base manifests", async () => {
  assertEquals(
    parseNamespace(await Deno.readTextFile(`${ROOT}/infra/k8s/base/namespace.yaml`)),
    "guardyn",
  );
  assertThrows(() => parseNamespace("kind: ConfigMap"), /must define one Namespace/);
});

Deno.test("cli: production never falls back to the current kube context", () => {
  assertEquals(chooseContext("local", undefined, {}, local), "k3d-guardyn");
  assertEquals(chooseContext("local", undefined, { KUBE_CONTEXT: "mine" }, local), "mine");
  assertEquals(chooseContext("prod", "prod-eu", { KUBE_CONTEXT: "mine" }, local), "prod-eu");
  assertThrows(() => chooseContext("prod", undefined, {}, local), /explicit kube context/);
});

Deno.test("teardown: deletes only when confirmed", () => {
  assertEquals(decide({ yes: true, interactive: false }, "guardyn"), { proceed: true });
  assertEquals(decide({ yes: false, interactive: true, answer: "guardyn" }, "guardyn"), {
    proceed: true,
  });
  assertEquals(decide({ yes: false, interactive: true, answer: "y" }, "guardyn"), {
    proceed: false,
    reason: "not confirmed: nothing was deleted",
  });
  assertEquals(decide({ yes: false, interactive: true, answer: null }, "guardyn").proceed, false);
  assertEquals(decide({ yes: false, interactive: false }, "guardyn"), {
    proceed: false,
    reason: "no terminal to confirm on: pass --yes to delete without asking",
  });
});
