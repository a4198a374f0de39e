import { constantTimeEqual } from "../crypto/primitives.ts";
/**
 * `deno task proto`: lints and formats the contracts in proto/ with buf, then regenerates
 * proto/gen/ with ts-proto. `deno task proto --check` changes nothing and fails, listing the
 * stale files, when proto/gen/ (or a .proto file's formatting) is not what the tools produce.
 *
 * Both tools are npm packages pinned in deno.json "imports" (their dependencies in deno.lock)
 * and run through Deno, so a machine needs nothing but Deno and the npm registry: buf ships its
 * compiler as a binary inside an npm platform package, and buf spawns ts-proto as its protoc
 * plugin. The generated headers say "protoc unknown", so no compiler version leaks into them.
 */

const ROOT = new URL("../", import.meta.url);
const PROTO_DIR = new URL("proto/", ROOT);
const GEN_DIR = new URL("proto/gen/", ROOT);

/**
 * ts-proto options, chosen for the Deno services and SDK:
 * - grpc-js service definitions, clients and server interfaces;
 * - `.ts` import suffixes so Deno resolves the generated imports;
 * - 64-bit integers as `number` (decoding a value beyond 2^53 throws instead of rounding);
 * - message-typed fields optional, scalars always present with proto3 defaults;
 * - bytes as `Uint8Array` (env=both): grpc-js still gets a Buffer from the generated
 *   serializers, and decoded bytes are Buffer views that are Uint8Arrays;
 * - oneofs as `{ $case, value }` unions (unions-value): one shape for every oneof, so code
 *   can narrow on `$case` and handle `value` generically.
 */
export const TS_PROTO_OPTIONS: readonly string[] = [
  "outputServices=grpc-js",
  "esModuleInterop=true",
  "importSuffix=.ts",
  "forceLong=number",
  "useOptionals=messages",
  "env=both",
  "oneof=unions-value",
];

/** How a generated tree differs from the committed one, per relative path. */
export interface StaleFile {
  path: string;
  problem: "changed" | "missing" | "extra";
}

/** Compares the freshly generated files with the committed ones (pure). */
export function staleFiles(
  generated: ReadonlyMap<string, Uint8Array>,
  committed: ReadonlyMap<string, Uint8Array>,
): StaleFile[] {
  const stale: StaleFile[] = [];
  for (const [path, bytes] of generated) {
    const current = committed.get(path);
    if (current === undefined) stale.push({ path, problem: "missing" });
    else if (!constantTimeEqual(bytes, current)) stale.push({ path, problem: "changed" });
  }
  for (const path of committed.keys()) {
    if (!generated.has(path)) stale.push({ path, problem: "extra" });
  }
  return stale.sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
}

/** The human report for `--check`. */
export function staleReport(stale: readonly StaleFile[]): string {
  const lines = stale.map(({ path, problem }) => `  ${problem.padEnd(7)} proto/gen/${path}`);
  return `proto/gen/ is stale; run \`deno task proto\` and commit the result:\n${lines.join("\n")}`;
}

/** The pinned npm specifiers of the two tools, read from deno.json "imports". */
export function toolSpecifiers(denoJson: unknown): { buf: string; tsProto: string } {
  const imports = (denoJson as { imports?: Record<string, unknown> } | null)?.imports ?? {};
  const pinned = (name: string): string => {
    const spec = imports[name];
    if (typeof spec !== "string" || !/^npm:(@[^@/]+\/)?[^@/]+@\d+\.\d+\.\d+$/.test(spec)) {
      throw new Error(`deno.json imports must pin "${name}" to an exact npm version`);
    }
    return spec;
  };
  return { buf: pinned("@bufbuild/buf"), tsProto: pinned("ts-proto") };
}

/** The buf generation template: one ts-proto run over all files, into `outDir`. */
export function generateTemplate(denoPath: string, tsProto: string, outDir: string): string {
  return JSON.stringify({
    version: "v2",
    plugins: [{
      local: [denoPath, "run", "-A", "--quiet", `${tsProto}/protoc-gen-ts_proto`],
      out: outDir,
      opt: TS_PROTO_OPTIONS,
      strategy: "all",
    }],
  });
}

class ToolError extends Error {}

/** Runs a tool to completion; its output is shown only when it fails. */
async function run(label: string, command: string, args: string[], cwd: URL): Promise<string> {
  const result = await new Deno.Command(command, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  if (!result.success) {
    throw new ToolError(
      `${label} failed (exit ${result.code}):\n` +
        decode(result.stdout) + decode(result.stderr),
    );
  }
  return decode(result.stdout);
}

async function readTree(dir: URL): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  async function walk(sub: string): Promise<void> {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(new URL(sub, dir)));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound && sub === "") return;
      throw error;
    }
    for (const entry of entries) {
      const path = sub + entry.name;
      if (entry.isDirectory) await walk(path + "/");
      else files.set(path, await Deno.readFile(new URL(path, dir)));
    }
  }
  await walk("");
  return files;
}

/** Makes `dir` hold exactly `files`: writes changed and missing ones, deletes extra ones. */
async function syncTree(dir: URL, files: ReadonlyMap<string, Uint8Array>): Promise<StaleFile[]> {
  const stale = staleFiles(files, await readTree(dir));
  for (const { path } of stale) {
    const target = new URL(path, dir);
    const bytes = files.get(path);
    if (bytes === undefined) {
      await Deno.remove(target);
    } else {
      await Deno.mkdir(new URL(".", target), { recursive: true });
      await Deno.writeFile(target, bytes);
    }
  }
  return stale;
}

async function main(args: string[]): Promise<number> {
  const check = args.includes("--check");
  const unknown = args.filter((arg) => arg !== "--check");
  if (unknown.length > 0) {
    console.error(`unknown argument(s): ${unknown.join(" ")}\nusage: deno task proto [--check]`);
    return 2;
  }
  const tools = toolSpecifiers(JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))));
  const buf = (...bufArgs: string[]) =>
    run(
      `buf ${bufArgs[0]}`,
      Deno.execPath(),
      ["run", "-A", "--quiet", `${tools.buf}/buf`, ...bufArgs],
      PROTO_DIR,
    );

  await buf("lint");
  if (check) {
    const diff = await buf("format", "--diff");
    if (diff.trim() !== "") {
      console.error(`proto files are not buf-formatted; run \`deno task proto\`:\n${diff}`);
      return 1;
    }
  } else {
    await buf("format", "--write");
  }

  const outDir = await Deno.makeTempDir({ prefix: "guardyn-proto-" });
  try {
    await buf("generate", "--template", generateTemplate(Deno.execPath(), tools.tsProto, outDir));
    const generated = await readTree(new URL(`file://${outDir}/`));
    if (generated.size === 0) throw new ToolError("ts-proto generated no files");
    if (check) {
      const stale = staleFiles(generated, await readTree(GEN_DIR));
      if (stale.length > 0) {
        console.error(staleReport(stale));
        return 1;
      }
      console.log(`proto/gen/ is up to date (${generated.size} files)`);
    } else {
      const stale = await syncTree(GEN_DIR, generated);
      console.log(`proto/gen/: ${generated.size} files, ${stale.length} updated`);
    }
    return 0;
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    if (!(error instanceof ToolError)) throw error;
    console.error(error.message);
    Deno.exit(1);
  }
}
