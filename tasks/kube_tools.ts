/**
 * The external tools the cluster tasks drive (k3d, kubectl, kustomize, a container builder,
 * kubernetes-validate), how to find them, and what to install when one is missing. Lookup is
 * injectable (`Which`) so the reporting logic is tested without touching PATH.
 */

export type ToolName =
  | "k3d"
  | "kubectl"
  | "kustomize"
  | "docker"
  | "podman"
  | "nerdctl"
  | "kubernetes-validate"
  | "sops"
  | "age";

export interface ToolInfo {
  purpose: string;
  /** What to run or install; package names only, no download addresses. */
  install: string;
}

export const TOOLS: Record<ToolName, ToolInfo> = {
  k3d: {
    purpose: "creates the local Kubernetes cluster (k3s in containers)",
    install: "go install github.com/k3d-io/k3d/v5@v5.8.3 (or your OS package of k3d)",
  },
  kubectl: {
    purpose: "applies manifests, waits for rollouts, port-forwards for verify",
    install: "the kubectl package of your OS (Debian/Ubuntu: Kubernetes apt repository)",
  },
  kustomize: {
    purpose: "renders infra/k8s overlays (kubectl's built-in `kubectl kustomize` also works)",
    install: "go install sigs.k8s.io/kustomize/kustomize/v5@v5.7.1",
  },
  docker: {
    purpose: "builds and pushes service images; runs the k3d nodes",
    install: "Docker Engine (docker.io / docker-ce) with a running daemon",
  },
  podman: { purpose: "builds and pushes service images", install: "apt-get install podman" },
  nerdctl: { purpose: "builds and pushes service images", install: "nerdctl with BuildKit" },
  "kubernetes-validate": {
    purpose: "validates rendered manifests against the Kubernetes schemas (tests)",
    install: "bash infra/tools/install.sh (pip package kubernetes-validate, cached)",
  },
  sops: {
    purpose: "encrypts and decrypts the Secrets kept in git (infra/secrets/*.enc.yaml)",
    install: "bash infra/tools/install.sh (go install github.com/getsops/sops/v3/cmd/sops@v3.13.3)",
  },
  age: {
    purpose: "the keys SOPS encrypts the Secrets to (age-keygen makes an identity)",
    install: "apt-get install age",
  },
};

/** Container builders in order of preference. */
export const BUILDERS = ["docker", "podman", "nerdctl"] as const;
export type Builder = typeof BUILDERS[number];

/** Finds an executable; undefined when absent. */
export type Which = (command: string) => Promise<string | undefined>;

/** Where installed helper tools are cached, outside the clone ($GUARDYN_CACHE). */
export function cacheDir(env: Record<string, string | undefined> = Deno.env.toObject()): string {
  const explicit = env.GUARDYN_CACHE?.trim();
  if (explicit) return explicit;
  if (!env.HOME) throw new Error("HOME is not set: set GUARDYN_CACHE to a cache directory");
  return `${env.HOME}/.cache/guardyn`;
}

/** Directories searched after PATH: the tool cache that infra/tools/install.sh fills. */
export function extraToolDirs(env: Record<string, string | undefined>): string[] {
  const cache = cacheDir(env);
  return [`${cache}/bin`, `${cache}/kubernetes-validate/bin`];
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return info.isFile && info.mode !== null && (info.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** PATH lookup plus the tool cache. */
export function pathWhich(env: Record<string, string | undefined> = Deno.env.toObject()): Which {
  const dirs = [...(env.PATH ?? "").split(":").filter((d) => d !== ""), ...extraToolDirs(env)];
  return async (command) => {
    if (command.includes("/")) return await isExecutable(command) ? command : undefined;
    for (const dir of dirs) {
      const candidate = `${dir}/${command}`;
      if (await isExecutable(candidate)) return candidate;
    }
    return undefined;
  };
}

/** How to run "kustomize build <dir>": the standalone binary or kubectl's built-in copy. */
export interface Kustomizer {
  command: string;
  /** Arguments before the directory. */
  args: string[];
}

export async function findKustomize(which: Which): Promise<Kustomizer | undefined> {
  const kustomize = await which("kustomize");
  if (kustomize) return { command: kustomize, args: ["build"] };
  const kubectl = await which("kubectl");
  if (kubectl) return { command: kubectl, args: ["kustomize"] };
  return undefined;
}

/** One clear error listing every missing tool with what it is for and how to install it. */
export class MissingToolsError extends Error {
  constructor(readonly missing: ToolName[], context: string) {
    super(
      `${context} needs tools that are not installed:\n` +
        missing.map((tool) =>
          `  - ${tool}: ${TOOLS[tool].purpose}\n    install: ${TOOLS[tool].install}`
        )
          .join("\n"),
    );
    this.name = "MissingToolsError";
  }
}

/** Resolves every tool or throws one MissingToolsError naming all that are absent. */
export async function requireTools(
  tools: readonly ToolName[],
  which: Which,
  context: string,
): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  const missing: ToolName[] = [];
  for (const tool of tools) {
    const path = await which(tool);
    if (path) found[tool] = path;
    else missing.push(tool);
  }
  if (missing.length > 0) throw new MissingToolsError(missing, context);
  return found;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to the child's stdin (secrets travel here, never in argv). */
  stdin?: string;
  cwd?: string;
  /** Inherit stdout/stderr (long-running, user-facing steps) instead of capturing them. */
  inherit?: boolean;
  /** Added to the inherited environment (a key file's path, never a secret value). */
  env?: Record<string, string>;
}

/** Runs a command to completion; never throws for a non-zero exit (callers decide). */
export async function run(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<CommandResult> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command, {
      args: [...args],
      cwd: options.cwd,
      env: options.env,
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: options.inherit ? "inherit" : "piped",
      stderr: options.inherit ? "inherit" : "piped",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { code: 127, stdout: "", stderr: `${command}: not found` };
    }
    throw error;
  }
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: options.inherit ? "" : decoder.decode(output.stdout),
    stderr: options.inherit ? "" : decoder.decode(output.stderr),
  };
}

/** Runs a command and returns stdout, or throws with its stderr (trimmed to a readable size). */
export async function runChecked(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    const detail = (result.stderr || result.stdout).trim().slice(-4000);
    const shown = [command.split("/").pop(), ...args].join(" ");
    throw new Error(`\`${shown}\` failed (exit ${result.code})${detail ? `:\n${detail}` : ""}`);
  }
  return result.stdout;
}

/** A loopback TCP port free right now (for a child process told to listen on it). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}
