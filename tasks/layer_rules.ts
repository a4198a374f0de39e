/**
 * The layer rules of the repository (DESIGN.md "Layers point one way"), as a pure function over
 * the import graph: `checkLayers(files)` takes every source file's path, imports and code and
 * returns every violation, each naming the file, the import and the rule. `tasks/layers.ts`
 * reads the repository and runs it in `deno task ok`.
 *
 * Units: each top-level folder is a unit, and so is each folder of `services/`. The wiring
 * (`services/runtime/`, `services/main.ts`, every `services/<name>/main.ts`, `tasks/`) sits
 * above everything it wires. Test files (`*_test.ts`, `*_bench.ts`, `*_test_kit.ts`, `tests/`)
 * set up real components across layers, so they are left out of the cycle rule and may reach
 * the wiring, but every other rule holds for them too.
 */

export interface SourceFile {
  /** Repository-relative path with forward slashes: "services/auth/module.ts". */
  path: string;
  /** Import specifiers as written (static, re-exports and dynamic imports with a literal). */
  imports: string[];
  /** The file's text, to look for I/O APIs where none may be used. */
  code?: string;
}

export type LayerRule =
  | "crypto-is-pure"
  | "client-does-not-import-services"
  | "services-do-not-import-each-other"
  | "adapters-only-in-wiring"
  | "layers-point-down"
  | "no-folder-cycles";

export interface Violation {
  rule: LayerRule;
  file: string;
  /** The import (resolved path, or the specifier when it is not a project file). */
  target: string;
  message: string;
}

/** Folders of services/ that are infrastructure, not services. */
export const KIT_FOLDERS = ["platform", "store", "bus", "kit", "runtime"] as const;

/** Lower layers of services/ and what each may import of the others (besides itself). */
const SERVICE_LAYER_ALLOWED: Record<string, readonly string[]> = {
  platform: [],
  store: ["platform"],
  bus: ["platform"],
  kit: ["platform", "store", "bus"],
};

/** I/O the pure crypto library may not touch (browsers and Deno alike). */
const IO_API =
  /\bDeno\.|\bfetch\s*\(|\bXMLHttpRequest\b|\bWebSocket\b|\blocalStorage\b|\bindexedDB\b|\brequire\s*\(/;

export function isTestFile(path: string): boolean {
  return path.startsWith("tests/") || /_(test|bench|test_kit)\.ts$/.test(path) ||
    /\/conformance\//.test(path);
}

/** The wiring: entry points and the runtime that opens backends and registers modules. */
export function isWiring(path: string): boolean {
  return path.startsWith("services/runtime/") || path === "services/main.ts" ||
    /^services\/[^/]+\/main\.ts$/.test(path) || path.startsWith("tasks/");
}

/** The unit a file belongs to for the cycle rule: "crypto", "services/auth", "wiring"... */
export function unitOf(path: string): string {
  if (path.startsWith("services/") && isWiring(path)) return "services/runtime";
  const parts = path.split("/");
  if (parts[0] === "services" && parts.length > 2) return `services/${parts[1]}`;
  return parts.length > 1 ? parts[0]! : ".";
}

/** Which adapter a path belongs to ("store/sqlite", "bus/jetstream"...), if any. */
export function adapterOf(path: string): string | undefined {
  const store = /^services\/store\/(sqlite|cql|fs|s3)\//.exec(path);
  if (store) return `store/${store[1]}`;
  const bus = /^services\/bus\/(memory|jetstream)[a-z_]*\.ts$/.exec(path);
  return bus ? `bus/${bus[1]}` : undefined;
}

function dirname(path: string): string {
  return path.slice(0, path.lastIndexOf("/"));
}

/** The folder an adapter's files and own tests sit in. */
function adapterFolder(adapter: string): string {
  return adapter.startsWith("store/") ? `services/${adapter}` : "services/bus";
}

/** Resolves a relative specifier against the importing file; undefined for packages. */
export function resolveImport(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith("./") && !specifier.startsWith("../")) return undefined;
  const parts = from.split("/").slice(0, -1);
  for (const piece of specifier.split("/")) {
    if (piece === "..") parts.pop();
    else if (piece !== ".") parts.push(piece);
  }
  return parts.join("/");
}

function serviceFolder(path: string): string | undefined {
  const match = /^services\/([^/]+)\//.exec(path);
  return match?.[1];
}

function isServiceFolder(folder: string | undefined): folder is string {
  return folder !== undefined && !(KIT_FOLDERS as readonly string[]).includes(folder);
}

function stripComments(code: string): string {
  return code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
}

export function checkLayers(files: readonly SourceFile[]): Violation[] {
  const violations: Violation[] = [];
  const edges = new Map<string, Map<string, { file: string; target: string }>>();
  const add = (rule: LayerRule, file: string, target: string, message: string) =>
    violations.push({ rule, file, target, message });

  for (const file of files) {
    const test = isTestFile(file.path);
    const fromFolder = serviceFolder(file.path);
    const fromAdapter = adapterOf(file.path);

    if (file.path.startsWith("crypto/") && !test && file.code !== undefined) {
      const io = IO_API.exec(stripComments(file.code));
      if (io) {
        add("crypto-is-pure", file.path, io[0], `crypto/ must not use I/O (${io[0].trim()})`);
      }
    }

    for (const specifier of file.imports) {
      const target = resolveImport(file.path, specifier);

      if (file.path.startsWith("crypto/") && !test) {
        if (target !== undefined && !target.startsWith("crypto/")) {
          add(
            "crypto-is-pure",
            file.path,
            target,
            "crypto/ imports nothing of the project outside crypto/",
          );
        } else if (target === undefined && /^(node:|https?:|jsr:)/.test(specifier)) {
          add("crypto-is-pure", file.path, specifier, "crypto/ imports no runtime or remote I/O");
        }
      }
      if (target === undefined) continue;

      if (file.path.startsWith("client/") && target.startsWith("services/")) {
        add(
          "client-does-not-import-services",
          file.path,
          target,
          "client/ talks to services over the API only",
        );
      }

      const toFolder = serviceFolder(target);
      if (
        isServiceFolder(fromFolder) && isServiceFolder(toFolder) && fromFolder !== toFolder &&
        !isWiring(file.path)
      ) {
        add(
          "services-do-not-import-each-other",
          file.path,
          target,
          `service "${fromFolder}" imports service "${toFolder}": share a port or a domain module`,
        );
      }

      const toAdapter = adapterOf(target);
      if (toAdapter !== undefined && toAdapter !== fromAdapter) {
        const ownTest = test && (fromAdapter === toAdapter ||
          dirname(file.path) === adapterFolder(toAdapter));
        const conformance = /\/conformance\//.test(file.path);
        if (!isWiring(file.path) && !ownTest && !conformance) {
          add(
            "adapters-only-in-wiring",
            file.path,
            target,
            `the ${toAdapter} adapter is opened by the wiring (services/runtime/) only`,
          );
        }
      }

      if (
        fromFolder !== undefined && fromFolder in SERVICE_LAYER_ALLOWED && toFolder !== undefined &&
        toFolder !== fromFolder && !SERVICE_LAYER_ALLOWED[fromFolder]!.includes(toFolder) &&
        !(test && toFolder === "runtime")
      ) {
        add(
          "layers-point-down",
          file.path,
          target,
          `services/${fromFolder}/ may import only ${
            SERVICE_LAYER_ALLOWED[fromFolder]!.map((f) => `services/${f}/`).join(", ") ||
            "itself"
          }`,
        );
      }

      if (!test) {
        const from = unitOf(file.path);
        const to = unitOf(target);
        if (from !== to) {
          const out = edges.get(from) ?? new Map();
          if (!out.has(to)) out.set(to, { file: file.path, target });
          edges.set(from, out);
        }
      }
    }
  }

  for (const cycle of findCycles(edges)) {
    const first = edges.get(cycle[0]!)!.get(cycle[1]!)!;
    add(
      "no-folder-cycles",
      first.file,
      first.target,
      `folders import each other in a circle: ${cycle.join(" → ")}`,
    );
  }
  return violations;
}

/** Each elementary cycle once (as found by DFS from its smallest unit), closed: [a, b, a]. */
function findCycles(edges: Map<string, Map<string, unknown>>): string[][] {
  const cycles: string[][] = [];
  const seen = new Set<string>();
  const units = [...edges.keys()].sort();
  for (const start of units) {
    const path = [start];
    const visit = (unit: string) => {
      for (const next of edges.get(unit)?.keys() ?? []) {
        if (next === start) {
          const key = [...path].sort().join(",");
          if (!seen.has(key)) {
            seen.add(key);
            cycles.push([...path, start]);
          }
        } else if (next > start && !path.includes(next) && path.length < 8) {
          path.push(next);
          visit(next);
          path.pop();
        }
      }
    };
    visit(start);
  }
  return cycles;
}

/** Import specifiers of a TypeScript source: static, type-only, re-exports, literal dynamic. */
export function importsOf(code: string): string[] {
  const found: string[] = [];
  const statics = /(?:^|\n)\s*(?:import|export)\s[^;]*?\bfrom\s*["']([^"']+)["']/g;
  const bare = /(?:^|\n)\s*import\s*["']([^"']+)["']/g;
  const dynamic = /\bimport\(\s*["']([^"']+)["']\s*\)/g;
  for (const pattern of [statics, bare, dynamic]) {
    for (const match of code.matchAll(pattern)) found.push(match[1]!);
  }
  return found;
}
