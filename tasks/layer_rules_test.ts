import { assertEquals } from "../tests/assert.ts";
import { checkLayers, importsOf, type LayerRule, type SourceFile } from "./layer_rules.ts";
import { readSources } from "./layers.ts";
import { repoRootFromHere } from "./kube_catalog.ts";

/** The rules (and files) of every violation, for exact comparison. */
function found(
  files: SourceFile[],
  only?: LayerRule,
): Array<[LayerRule, string, string]> {
  return checkLayers(files).filter((v) => only === undefined || v.rule === only)
    .map((v) => [v.rule, v.file, v.target]);
}

const file = (path: string, imports: string[] = [], code = ""): SourceFile => ({
  path,
  imports,
  code,
});

Deno.test("layers: the repository follows every rule", async () => {
  const files = await readSources(repoRootFromHere());
  assertEquals(checkLayers(files), []);
});

Deno.test("layers: crypto imports nothing of the project and uses no I/O", () => {
  assertEquals(
    found([
      file("crypto/a.ts", ["../client/x.ts", "./b.ts", "@noble/curves/ed25519.js"]),
      file("crypto/b.ts", ["node:fs"]),
      file("crypto/c.ts", [], "const r = await fetch(url);"),
      file("crypto/d.ts", [], "// Deno.readFile is not used here\nexport const x = 1;"),
      file("crypto/d_test.ts", ["../tests/assert.ts"], "Deno.test('x', () => {});"),
    ]),
    [
      ["crypto-is-pure", "crypto/a.ts", "client/x.ts"],
      ["crypto-is-pure", "crypto/b.ts", "node:fs"],
      ["crypto-is-pure", "crypto/c.ts", "fetch("],
    ],
  );
});

Deno.test("layers: client does not import services", () => {
  assertEquals(
    found([
      file("client/a.ts", ["../services/platform/errors.ts", "../crypto/keys.ts"]),
    ]),
    [["client-does-not-import-services", "client/a.ts", "services/platform/errors.ts"]],
  );
});

Deno.test("layers: a service never imports another service, tests included", () => {
  assertEquals(
    found([
      file("services/messaging/directory.ts", ["../auth/addressable.ts"]),
      file("services/messaging/x_test.ts", ["../auth/module.ts"]),
      file("services/messaging/y.ts", ["../store/addressable.ts", "../kit/service_module.ts"]),
    ]),
    [
      [
        "services-do-not-import-each-other",
        "services/messaging/directory.ts",
        "services/auth/addressable.ts",
      ],
      [
        "services-do-not-import-each-other",
        "services/messaging/x_test.ts",
        "services/auth/module.ts",
      ],
    ],
  );
});

Deno.test("layers: adapters are imported only by the wiring, conformance suites and own tests", () => {
  assertEquals(
    found([
      file("services/messaging/a_test.ts", ["../bus/memory.ts"]),
      file("services/store/open.ts", ["./sqlite/sqlite_store.ts"]),
      file("services/runtime/open_store.ts", ["../store/sqlite/sqlite_store.ts"]),
      file("services/store/conformance/s.ts", ["../cql/cql_store.ts"]),
      file("services/store/sqlite/sqlite_test.ts", ["./sqlite_store.ts", "../cql/cql_store.ts"]),
      file("services/bus/memory_test.ts", ["./memory.ts"]),
      file("services/bus/jetstream.ts", ["./jetstream_topology.ts"]),
      file("tasks/migrate.ts", ["../services/store/cql/cql_options.ts"]),
    ]),
    [
      ["adapters-only-in-wiring", "services/messaging/a_test.ts", "services/bus/memory.ts"],
      [
        "adapters-only-in-wiring",
        "services/store/open.ts",
        "services/store/sqlite/sqlite_store.ts",
      ],
      [
        "adapters-only-in-wiring",
        "services/store/sqlite/sqlite_test.ts",
        "services/store/cql/cql_store.ts",
      ],
    ],
  );
});

Deno.test("layers: platform is the bottom kit; store and bus sit on it; the kit on them", () => {
  assertEquals(
    found([
      file("services/platform/config.ts", ["../store/config.ts"]),
      file("services/platform/runtime.ts", ["../bus/open.ts"]),
      file("services/store/x.ts", ["../platform/log.ts", "../bus/port.ts"]),
      file("services/kit/m.ts", ["../store/ports.ts", "../runtime/runtime.ts"]),
      file("services/platform/x_test.ts", ["../runtime/runtime.ts"]),
    ], "layers-point-down"),
    [
      ["layers-point-down", "services/platform/config.ts", "services/store/config.ts"],
      ["layers-point-down", "services/platform/runtime.ts", "services/bus/open.ts"],
      ["layers-point-down", "services/store/x.ts", "services/bus/port.ts"],
      ["layers-point-down", "services/kit/m.ts", "services/runtime/runtime.ts"],
    ],
  );
});

Deno.test("layers: folders that import each other in a circle are named", () => {
  const cycles = checkLayers([
    file("client/a.ts", ["../tasks/b.ts"]),
    file("tasks/b.ts", ["../client/c.ts"]),
    file("services/groups/g.ts", ["../presence/p.ts"]),
    file("services/presence/p.ts", ["../groups/g.ts"]),
    // Tests and entry points do not make circles: they sit above what they start.
    file("services/auth/main.ts", ["../runtime/catalog.ts"]),
    file("services/runtime/catalog.ts", ["../auth/module.ts"]),
    file("services/auth/x_test.ts", ["../runtime/runtime.ts"]),
  ]).filter((v) => v.rule === "no-folder-cycles");
  assertEquals(cycles.map((v) => v.message), [
    "folders import each other in a circle: client → tasks → client",
    "folders import each other in a circle: services/groups → services/presence → services/groups",
  ]);
});

Deno.test("layers: imports are read from static, type-only, re-export and literal dynamic forms", () => {
  const code = [
    'import { a } from "./a.ts";',
    'import type { B } from "../b.ts";',
    "import {",
    "  c,",
    '} from "./c.ts";',
    'export { d } from "./d.ts";',
    'import "./side.ts";',
    'const e = await import("./e.ts");',
    'const text = "import nothing from here";',
  ].join("\n");
  assertEquals(importsOf(code).sort(), [
    "../b.ts",
    "./a.ts",
    "./c.ts",
    "./d.ts",
    "./e.ts",
    "./side.ts",
  ]);
});
