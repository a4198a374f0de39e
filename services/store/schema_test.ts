import { assert, assertEquals, captureError } from "../../tests/assert.ts";
import { SchemaMismatchError } from "./errors.ts";
import { planSchema } from "./schema.ts";

const known = [{ version: 1, name: "init" }, { version: 2, name: "more" }];

Deno.test("schema plan: current, behind, and a fresh database", () => {
  assertEquals(planSchema("db", known, known), { state: "current", version: 2 });
  assertEquals(planSchema("db", [known[0]!], known), {
    state: "behind",
    version: 1,
    pending: [known[1]!],
  });
  assertEquals(planSchema("db", [], known), { state: "behind", version: 0, pending: known });
});

Deno.test("schema plan: newer or foreign histories are refused with a clear message", () => {
  const newer = captureError(() => planSchema("db", [...known, { version: 3, name: "x" }], known));
  assert(newer instanceof SchemaMismatchError);
  assertEquals(
    newer.message,
    "db has schema version 3, newer than version 2 this binary knows: deploy a build that " +
      "knows version 3",
  );
  const renamed = captureError(() => planSchema("db", [{ version: 1, name: "other" }], known));
  assert(renamed instanceof SchemaMismatchError);
  assert(renamed.message.includes("unknown schema history"), renamed.message);
  const gap = captureError(() => planSchema("db", [{ version: 2, name: "more" }], known));
  assert(gap instanceof SchemaMismatchError);
});
