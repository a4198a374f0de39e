import { assertEquals, assertThrows } from "../tests/assert.ts";
import { parse } from "yaml";
import { k3dConfigFor } from "./kube_create.ts";
import { ROOT } from "./kube_test_kit.ts";

Deno.test("kube-create: the ha topology is 3 servers and 2 agents, otherwise the same cluster", async () => {
  const single = parse(await Deno.readTextFile(`${ROOT}/${k3dConfigFor()}`));
  const ha = parse(await Deno.readTextFile(`${ROOT}/${k3dConfigFor("ha")}`));
  assertEquals([single.servers, single.agents], [1, 0]);
  assertEquals([ha.servers, ha.agents], [3, 2]);
  // Same name, image, API port, ingress ports and registry: the other tasks find it alike.
  for (const key of ["metadata", "image", "kubeAPI", "ports", "registries", "options"]) {
    assertEquals(ha[key], single[key], key);
  }
  assertThrows(() => k3dConfigFor("huge"), /unknown --topology/);
});
