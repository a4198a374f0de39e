/**
 * The offline image form of the services, for where no `denort` runtime can be had (`deno
 * compile` needs one, and no registry reachable here ships it): the deno binary, the sources,
 * and a DENO_DIR prepared with `deno install --frozen --entrypoint` for every service, so a
 * service starts with `deno run --cached-only --frozen` and its narrow permissions, with no
 * network access to any registry:
 *
 *   <out>/deno            the deno binary this build ran with
 *   <out>/app/            deno.json, deno.lock, services/, proto/, crypto/, tasks/
 *   <out>/deno_dir/       the prepared cache (npm packages, compiled modules)
 *   <out>/guardyn         `guardyn <service>` starts one service (sh; what an image's entrypoint runs)
 */

import { join } from "node:path";
import { runChecked } from "./kube_tools.ts";
import type { CompileTarget } from "./build.ts";

/** What a service needs of the repository at run time. */
export const APP_PATHS = ["deno.json", "deno.lock", "services", "proto", "crypto", "tasks"];

/** The permissions a service runs with in the offline form (compare build.ts RUNTIME_PERMISSIONS). */
export function offlinePermissions(out: string): string[] {
  return [
    "--allow-net",
    "--allow-env",
    "--allow-read",
    "--allow-sys",
    "--allow-ffi",
    // The gRPC gateway workers are this deno started again on the worker module.
    `--allow-run=${join(out, "deno")}`,
    "--allow-write=/tmp",
    "--no-prompt",
  ];
}

/** `deno run` arguments for one entry of the offline form. */
export function offlineRunArgs(out: string, entry: string): string[] {
  return [
    "run",
    "--cached-only",
    "--frozen",
    `--config=${join(out, "app", "deno.json")}`,
    ...offlinePermissions(out),
    join(out, "app", entry),
  ];
}

export async function buildOfflineImage(
  root: string,
  out: string,
  targets: readonly CompileTarget[],
  log: (line: string) => void = () => {},
): Promise<void> {
  await Deno.remove(out, { recursive: true }).catch(() => {});
  await Deno.mkdir(join(out, "app"), { recursive: true });
  await Deno.copyFile(Deno.execPath(), join(out, "deno"));
  await Deno.chmod(join(out, "deno"), 0o755);
  // Only tracked files: nothing local (profiles, databases, keys) goes into an image.
  const tracked = (await runChecked("git", ["ls-files", "-z", "--", ...APP_PATHS], { cwd: root }))
    .split("\0").filter((path) => path && !/_test\.ts$|_bench\.ts$/.test(path));
  for (const path of tracked) {
    await Deno.mkdir(join(out, "app", path, ".."), { recursive: true });
    await Deno.copyFile(join(root, path), join(out, "app", path));
  }
  log(`offline image: ${tracked.length} source files; preparing the module cache`);
  const started = performance.now();
  const install = new Deno.Command(join(out, "deno"), {
    args: ["install", "--frozen", "--entrypoint", ...targets.map((t) => t.entry)],
    cwd: join(out, "app"),
    env: { DENO_DIR: join(out, "deno_dir"), NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  });
  const result = await install.output();
  if (!result.success) {
    throw new Error(
      `deno install --frozen failed:\n${new TextDecoder().decode(result.stderr).slice(-3000)}`,
    );
  }
  log(`offline image: cache ready in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  const entries = targets.map((t) => `  ${t.binary}) entry=${t.entry} ;;`).join("\n");
  const script = `#!/bin/sh
# Starts one Guardyn service from the offline image form (tasks/offline_image.ts).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
case "\${1:-}" in
${entries}
  *) echo "usage: guardyn <${targets.map((t) => t.binary).join("|")}>" >&2; exit 64 ;;
esac
shift
export DENO_DIR="$here/deno_dir" GUARDYN_CACHED_ONLY=1 DENO_NO_UPDATE_CHECK=1
exec "$here/deno" ${
    offlineRunArgs("$here", "$entry").map((a) => a.includes("$") ? `"${a}"` : a).join(" ")
  } "$@"
`;
  await Deno.writeTextFile(join(out, "guardyn"), script, { mode: 0o755 });
}
