import { assert, assertEquals, assertMatch, assertThrows } from "../tests/assert.ts";
import {
  builderArgs,
  compileArgs,
  compileTargets,
  EMBEDDED,
  explainCompileFailure,
  findBuilder,
  imageTag,
  isDenoCli,
  NPM_EXCLUDES,
  parseTarget,
} from "./build.ts";
import { catalog, ROOT } from "./kube_test_kit.ts";

/** What `deno compile` printed on this machine, where the runtime download is blocked. */
const BLOCKED_DOWNLOAD = `Compile services/auth/main.ts to dist/auth
Download https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip
error: Writing deno compile executable to temporary file 'dist/auth.tmp-2496aea07e257406'

Caused by:
    0: Setting up base binary.
    1: error sending request for url: client error (Connect): dns error`;

Deno.test("build: one binary per catalog service plus migrate, each from an existing entry", async () => {
  const specs = await catalog();
  const targets = compileTargets(specs);
  assertEquals(targets.map((t) => t.binary), [...specs.map((s) => s.name), "migrate"]);
  for (const target of targets) {
    assert((await Deno.stat(`${ROOT}/${target.entry}`)).isFile, target.entry);
    assertMatch(target.image, /^guardyn-[a-z-]+$/);
  }
  for (const path of EMBEDDED) assert((await Deno.stat(`${ROOT}/${path}`)).isDirectory, path);
});

Deno.test("build: compile flags grant what a service needs and embed the migrations", async () => {
  const [auth] = compileTargets(await catalog());
  const args = compileArgs(auth!, "x86_64-unknown-linux-gnu");
  assertEquals(args[0], "compile");
  for (
    const flag of [
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-ffi",
      "--allow-write=/tmp",
      "--no-prompt",
    ]
  ) {
    assert(args.includes(flag), flag);
  }
  assert(!args.includes("-A") && !args.includes("--allow-all") && !args.includes("--allow-run"));
  // Only the binary itself may be started again (its gateway workers).
  assert(args.includes("--allow-run=/app/guardyn"));
  assertEquals(args.slice(args.indexOf("--include"), args.indexOf("--include") + 2), [
    "--include",
    "services/store/cql/migrations",
  ]);
  assertEquals(args.slice(-5), [
    "--target",
    "x86_64-unknown-linux-gnu",
    "--output",
    "dist/auth",
    "services/auth/main.ts",
  ]);
  assertThrows(() => parseTarget("x86_64-apple-darwin"), /unsupported --target/);
});

Deno.test("build: a blocked runtime download is told apart from a compile error", () => {
  const blocked = explainCompileFailure(BLOCKED_DOWNLOAD, "x86_64-unknown-linux-gnu");
  assertMatch(blocked, /could not get the Deno runtime \(denort\)/);
  assertMatch(blocked, /DENORT_BIN/);
  const typeError = explainCompileFailure(
    "error: TS2322 [ERROR]: Type 'string' is not assignable to type 'number'.",
    "x86_64-unknown-linux-gnu",
  );
  assertMatch(typeError, /^deno compile failed:\nerror: TS2322/);
});

Deno.test("build: image tags are immutable and say when the tree was dirty", () => {
  const commit = "0123456789abcdef0123456789abcdef01234567";
  assertEquals(imageTag(commit, false, new Date()), "git-0123456789ab");
  assertEquals(
    imageTag(commit, true, new Date("2026-11-22T03:04:05Z")),
    "git-0123456789ab-dirty-20261122030405",
  );
  assertThrows(() => imageTag("not-a-commit", false, new Date()), /not a commit id/);
});

Deno.test("build: builder commands and the choice of builder", async () => {
  const step = { binary: "auth", ref: "localhost:5111/guardyn-auth:git-1", push: true };
  const docker = builderArgs("docker", step, "x86_64-unknown-linux-gnu");
  assertEquals(docker.build, [
    "build",
    "--platform",
    "linux/amd64",
    "-f",
    "infra/containers/Containerfile",
    "--build-arg",
    "BINARY=auth",
    "-t",
    "localhost:5111/guardyn-auth:git-1",
    "dist",
  ]);
  assertEquals(docker.push, ["push", "localhost:5111/guardyn-auth:git-1"]);
  assertEquals(builderArgs("podman", step, "aarch64-unknown-linux-gnu").push, [
    "push",
    "--tls-verify=false",
    "localhost:5111/guardyn-auth:git-1",
  ]);
  const which = (tools: string[]) => (c: string) =>
    Promise.resolve(tools.includes(c) ? `/bin/${c}` : undefined);
  const none = await findBuilder(which([]), () => Promise.resolve(true));
  assertEquals(none, { notes: ["no container builder (docker, podman, nerdctl) is installed"] });
  const dead = await findBuilder(
    which(["docker", "podman"]),
    (path) => Promise.resolve(path === "/bin/podman"),
  );
  assertEquals(dead.builder, { name: "podman", path: "/bin/podman" });
  assertMatch(dead.notes[0]!, /docker is installed but its engine does not answer/);
});

Deno.test("build: the Containerfile runs the binary as non-root on a minimal base", async () => {
  const text = await Deno.readTextFile(`${ROOT}/infra/containers/Containerfile`);
  assertMatch(text, /^ARG BINARY$/m);
  assertMatch(text, /^COPY \$\{BINARY\} \/app\/guardyn$/m);
  assertMatch(text, /^USER 65532:65532$/m);
  assertMatch(text, /^ENTRYPOINT \["\/app\/guardyn"\]$/m);
  assertMatch(text, /distroless/);
});

Deno.test("build: only reachable npm packages, without bintrees' 2 MB of test data", async () => {
  const [auth] = compileTargets(await catalog());
  const args = compileArgs(auth!, "x86_64-unknown-linux-gnu", "/cache/npm/registry.npmjs.org");
  assert(args.includes("--exclude-unused-npm"));
  assertEquals(NPM_EXCLUDES, ["bintrees/1.0.2/test"]);
  const at = args.indexOf("--exclude");
  assertEquals(args.slice(at, at + 2), [
    "--exclude",
    "/cache/npm/registry.npmjs.org/bintrees/1.0.2/test",
  ]);
  assert(!compileArgs(auth!, "x86_64-unknown-linux-gnu").includes("--exclude"));
});

Deno.test("build: a DENORT_BIN that is the deno CLI is recognised (it would start a REPL)", async () => {
  assert(await isDenoCli(Deno.execPath()));
  // Not this deno but another copy of the CLI: found by its compile subcommand.
  const copy = await Deno.makeTempFile({ prefix: "guardyn-deno-copy-" });
  try {
    await Deno.copyFile(Deno.execPath(), copy);
    await Deno.chmod(copy, 0o755);
    assert(await isDenoCli(copy));
  } finally {
    await Deno.remove(copy);
  }
  assert(!(await isDenoCli("/bin/true")), "a program without a compile subcommand");
});
