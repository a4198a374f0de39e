/**
 * `deno task build [--registry R] [--tag T] [--target T] [--no-images] [--push]`
 *
 * 1. `deno compile` every service of the catalog (services/runtime/catalog.ts) (services/<name>/main.ts) and the
 *    migrate task into one binary each: dist/<name>, dist/migrate.
 * 2. If a container builder (docker, podman or nerdctl) with a running engine is present,
 *    builds one image per binary from infra/containers/Containerfile and pushes it: by default
 *    to the k3d registry (infra/k3d-config.yaml) when it answers, or to --registry with --push.
 * 3. Records the registry and tag in dist/images.json for `deno task deploy`.
 *
 * `deno compile` downloads the Deno runtime for the target (denort) on first use. Where that
 * download is blocked and DENORT_BIN is not set, the task says so in one line and builds the
 * offline image form instead (dist/offline: tasks/offline_image.ts). A DENORT_BIN that is the
 * deno CLI is refused: the "binary" would start the Deno REPL, not the service. Every service
 * built, in either form, is started once and must answer /readyz (auth: register an account,
 * so the Argon2 native addon is proven to load) before the build is called done.
 */

import { loadCatalog, repoRootFromHere, type ServiceSpec } from "./kube_catalog.ts";
import { fail, loadLocalCluster, parseFlags } from "./kube_cli.ts";
import { imageName } from "./kube_manifests.ts";
import { checkImageSettings, imageRef, MIGRATE_IMAGE } from "./kube_render.ts";
import { type Builder, BUILDERS, pathWhich, run, runChecked, type Which } from "./kube_tools.ts";
import { buildOfflineImage } from "./offline_image.ts";
import { smokeStart } from "./smoke_start.ts";

export interface CompileTarget {
  /** Binary name in dist/ and build argument of the Containerfile. */
  binary: string;
  /** Entry module, relative to the repository root. */
  entry: string;
  image: string;
}

export function compileTargets(specs: readonly ServiceSpec[]): CompileTarget[] {
  return [
    ...specs.map((spec) => ({
      binary: spec.name,
      entry: `services/${spec.name}/main.ts`,
      image: imageName(spec.name),
    })),
    { binary: "migrate", entry: "tasks/migrate.ts", image: MIGRATE_IMAGE },
  ];
}

export const TARGETS = {
  "x86_64-unknown-linux-gnu": "linux/amd64",
  "aarch64-unknown-linux-gnu": "linux/arm64",
} as const;
export type Target = keyof typeof TARGETS;

export function parseTarget(value: string): Target {
  if (value in TARGETS) return value as Target;
  throw new Error(`unsupported --target ${value}: use ${Object.keys(TARGETS).join(" or ")}`);
}

/** Files read at run time, embedded in every binary (the CQL schema migrations). */
export const EMBEDDED = ["services/store/cql/migrations"];

/**
 * The permissions compiled into every binary: the ones a service needs and no more: network,
 * environment, reading its key file and embedded migrations, system info (drivers), FFI for
 * the Argon2 native addon, and writing only under /tmp (where Deno unpacks native addons).
 */
export const RUNTIME_PERMISSIONS = [
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "--allow-sys",
  "--allow-ffi",
  // The native gRPC gateway workers are this same binary started again (grpc_gateway.ts), at
  // its path in the image (infra/containers/Containerfile); nothing else may be run.
  "--allow-run=/app/guardyn",
  "--allow-write=/tmp",
  "--no-prompt",
] as const;

/**
 * npm package folders never loaded at run time but large enough to matter: bintrees@1.0.2
 * (prom-client -> tdigest) ships 2 MB of integers in test/perf, which makes Deno 2.9's compile
 * overflow its stack (denoland/deno#36746). Relative to the npm cache's registry folder.
 */
export const NPM_EXCLUDES = ["bintrees/1.0.2/test"];

/**
 * `deno compile` arguments for one binary. `npmCache` is the npm registry folder of DENO_DIR
 * (`<DENO_DIR>/npm/registry.npmjs.org`), where NPM_EXCLUDES live.
 */
export function compileArgs(target: CompileTarget, arch: Target, npmCache?: string): string[] {
  return [
    "compile",
    ...RUNTIME_PERMISSIONS,
    // Only the npm packages the service reaches (auth: 122 MB instead of 320 MB).
    "--exclude-unused-npm",
    ...(npmCache ? NPM_EXCLUDES.flatMap((path) => ["--exclude", `${npmCache}/${path}`]) : []),
    ...EMBEDDED.flatMap((path) => ["--include", path]),
    "--target",
    arch,
    "--output",
    `dist/${target.binary}`,
    target.entry,
  ];
}

/** Tells a blocked runtime download apart from a real compile error. */
export function explainCompileFailure(stderr: string, arch: Target): string {
  if (/denort|dl\.deno\.land|Setting up base binary/i.test(stderr)) {
    return `deno compile could not get the Deno runtime (denort) for ${arch}: it downloads it on ` +
      `first use and the download failed on this machine (no access to the Deno download ` +
      `server). Build on a machine that can download it, or set DENORT_BIN to a denort ` +
      `binary of Deno ${Deno.version.deno} for ${arch}.`;
  }
  return `deno compile failed:\n${stderr.trim().slice(-4000)}`;
}

/**
 * True when `path` is the deno CLI rather than a denort runtime: it is this very deno, or it
 * has the CLI's `compile` subcommand (a denort has no subcommands).
 */
export async function isDenoCli(path: string): Promise<boolean> {
  const real = (p: string) => Deno.realPath(p).catch(() => p);
  if (await real(path) === await real(Deno.execPath())) return true;
  const result = await run(path, ["compile", "--help"]);
  return result.code === 0 && /deno compile/i.test(result.stdout + result.stderr);
}

/** Immutable image tag: the commit, plus a timestamp when the work tree has local changes. */
export function imageTag(commit: string, dirty: boolean, now: Date): string {
  if (!/^[0-9a-f]{7,40}$/.test(commit)) throw new Error(`not a commit id: ${commit}`);
  const short = commit.slice(0, 12);
  if (!dirty) return `git-${short}`;
  const stamp = now.toISOString().replace(/[-:T]/g, "").slice(0, 14);
  return `git-${short}-dirty-${stamp}`;
}

export interface ImageStep {
  binary: string;
  /** Reference the image is built and pushed as. */
  ref: string;
  push: boolean;
}

export function builderArgs(
  builder: Builder,
  step: ImageStep,
  arch: Target,
): { build: string[]; push: string[] } {
  const insecure = builder === "podman" && /^(localhost|127\.0\.0\.1)[:/]/.test(step.ref)
    ? ["--tls-verify=false"]
    : [];
  return {
    build: [
      "build",
      "--platform",
      TARGETS[arch],
      "-f",
      "infra/containers/Containerfile",
      "--build-arg",
      `BINARY=${step.binary}`,
      "-t",
      step.ref,
      "dist",
    ],
    push: ["push", ...insecure, step.ref],
  };
}

/** The first builder whose engine answers, with the reasons the others were skipped. */
export async function findBuilder(
  which: Which,
  engineAnswers: (path: string) => Promise<boolean>,
): Promise<{ builder?: { name: Builder; path: string }; notes: string[] }> {
  const notes: string[] = [];
  for (const name of BUILDERS) {
    const path = await which(name);
    if (!path) continue;
    if (await engineAnswers(path)) return { builder: { name, path }, notes };
    notes.push(`${name} is installed but its engine does not answer (\`${name} info\` failed)`);
  }
  if (notes.length === 0) notes.push("no container builder (docker, podman, nerdctl) is installed");
  return { notes };
}

async function engineAnswers(path: string): Promise<boolean> {
  return (await run(path, ["info"])).code === 0;
}

async function portAnswers(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return true;
  } catch {
    return false;
  }
}

async function gitTag(root: string): Promise<string> {
  const commit = (await runChecked("git", ["rev-parse", "HEAD"], { cwd: root })).trim();
  const status = await runChecked("git", ["status", "--porcelain"], { cwd: root });
  return imageTag(commit, status.trim() !== "", new Date());
}

async function main() {
  const flags = parseFlags(Deno.args, {
    options: ["registry", "tag", "target"],
    switches: ["no-images", "push"],
  });
  const root = repoRootFromHere();
  const arch = parseTarget(
    flags.options.target ??
      (Deno.build.os === "linux"
        ? `${Deno.build.arch}-unknown-linux-gnu`
        : "x86_64-unknown-linux-gnu"),
  );
  const targets = compileTargets(loadCatalog());
  await Deno.mkdir(`${root}/dist`, { recursive: true });
  const denort = Deno.env.get("DENORT_BIN");
  if (denort && await isDenoCli(denort)) {
    throw new Error(
      `DENORT_BIN=${denort} is the deno CLI, not the denort runtime: a binary built on it ` +
        "starts the Deno REPL instead of the service. Point DENORT_BIN at a denort of Deno " +
        `${Deno.version.deno}, or unset it to build the offline image form.`,
    );
  }
  const npmCache = await npmCacheDir();
  const built: CompileTarget[] = [];
  for (const target of targets) {
    const started = performance.now();
    const result = await run(Deno.execPath(), compileArgs(target, arch, npmCache), { cwd: root });
    if (result.code !== 0) {
      const explained = explainCompileFailure(result.stderr, arch);
      if (denort || !explained.includes("denort")) throw new Error(explained);
      console.log(
        "build: no denort runtime can be downloaded here (set DENORT_BIN to one); building " +
          "the offline image form (deno + a prepared module cache) in dist/offline instead",
      );
      await buildOffline(root, targets);
      return;
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const { size } = await Deno.stat(`${root}/dist/${target.binary}`);
    console.log(`build: dist/${target.binary} (${(size / 2 ** 20).toFixed(0)} MiB, ${seconds} s)`);
    built.push(target);
  }
  for (const target of built.filter((t) => t.binary !== "migrate")) {
    // Outside the image the binary is not at /app/guardyn: serve gRPC in-process here.
    await checkStarts(
      target.binary,
      await smokeStart(target.binary, `${root}/dist/${target.binary}`, [], {
        GRPC_LISTENER: "in-process",
      }),
    );
  }
  if (flags.switches.has("no-images")) return;

  const found = await findBuilder(pathWhich(), engineAnswers);
  if (!found.builder) {
    console.log(`build: images skipped: ${found.notes.join("; ")}. Binaries are in dist/.`);
    return;
  }
  const local = await loadLocalCluster(root);
  const tag = flags.options.tag ?? await gitTag(root);
  // Local: build as the pushing name, record the name the cluster pulls by.
  const pushRegistry = flags.options.registry ?? local.registry.push;
  const pullRegistry = flags.options.registry ?? local.registry.inCluster;
  checkImageSettings({ registry: pushRegistry, tag });
  const localRegistryUp = !flags.options.registry &&
    await portAnswers(Number(pushRegistry.split(":")[1]));
  const push = flags.switches.has("push") || localRegistryUp;
  const { name, path } = found.builder;
  for (const target of targets) {
    const step = {
      binary: target.binary,
      ref: imageRef(target.image, { registry: pushRegistry, tag }),
      push,
    };
    const args = builderArgs(name, step, arch);
    await runChecked(path, args.build, { cwd: root, inherit: true });
    if (push) await runChecked(path, args.push, { cwd: root, inherit: true });
    console.log(`build: image ${step.ref}${push ? " (pushed)" : ""}`);
  }
  await Deno.writeTextFile(
    `${root}/dist/images.json`,
    JSON.stringify({ registry: pullRegistry, tag }, null, 2) + "\n",
  );
  if (!push) {
    console.log(
      "build: images were not pushed: the k3d registry does not answer (deno task kube-create), " +
        "or pass --push with --registry",
    );
  }
}

/** `<DENO_DIR>/npm/registry.npmjs.org`, from `deno info --json`. */
async function npmCacheDir(): Promise<string | undefined> {
  const result = await run(Deno.execPath(), ["info", "--json"]);
  if (result.code !== 0) return undefined;
  const denoDir = (JSON.parse(result.stdout) as { denoDir?: string }).denoDir;
  return denoDir ? `${denoDir}/npm/registry.npmjs.org` : undefined;
}

async function buildOffline(root: string, targets: readonly CompileTarget[]): Promise<void> {
  const out = `${root}/dist/offline`;
  console.log("build: preparing the module cache takes about a minute the first time");
  await buildOfflineImage(root, out, targets, (line) => console.log(`build: ${line}`));
  for (const target of targets.filter((t) => t.binary !== "migrate")) {
    await checkStarts(
      target.binary,
      await smokeStart(target.binary, `${out}/guardyn`, [target.binary]),
    );
  }
  console.log(
    `build: dist/offline is ready: \`dist/offline/guardyn <service>\` runs one service from the ` +
      "prepared cache (--cached-only); infra/containers/Containerfile.offline makes an image of it",
  );
}

function checkStarts(
  binary: string,
  result: { ready: boolean; argon2?: boolean },
): void {
  if (!result.ready) throw new Error(`${binary} started but /readyz did not answer 200`);
  if (result.argon2 === false) throw new Error(`${binary}: Register failed (the Argon2 addon)`);
  console.log(
    `build: ${binary} starts and is ready${result.argon2 ? "; Argon2 addon loads" : ""}`,
  );
}

if (import.meta.main) await main().catch((error) => fail("build", error));
