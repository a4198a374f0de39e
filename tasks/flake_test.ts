/**
 * The Nix flake: it parses (nix-instantiate, Debian's nix-bin), and its devShell carries every
 * tool the tasks call. flake.lock cannot be made on machines without GitHub access (the nixpkgs
 * input is fetched from there); `nix flake lock` on any machine with it writes the lock.
 */
import { join } from "node:path";
import { assert, assertEquals } from "../tests/assert.ts";
import { run } from "./kube_tools.ts";
import { ROOT } from "./kube_test_kit.ts";

Deno.test("flake: parses, and the devShell carries every tool the tasks call", async () => {
  const parsed = await run("nix-instantiate", ["--parse", join(ROOT, "flake.nix")]);
  assertEquals(parsed.code, 0, parsed.stderr);
  for (
    const tool of [
      "deno",
      "kubectl",
      "kustomize",
      "k3d",
      "sops",
      "age",
      "cosign",
      "syft",
      "nats-server",
      "jdk17_headless",
      "prometheus",
      "kubernetes",
      "etcd",
      "kwok",
    ]
  ) {
    assert(new RegExp(`\\b${tool}\\b`).test(parsed.stdout), `devShell has ${tool}`);
  }
});
