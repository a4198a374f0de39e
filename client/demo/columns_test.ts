import { assertEquals } from "../../tests/assert.ts";
import { displayWidth, sideBySide, wrap } from "./columns.ts";

Deno.test("demo columns: wrapping at spaces, wide emoji, aligned columns", () => {
  assertEquals(wrap("short", 10), ["short"]);
  assertEquals(wrap("hello there general", 11), ["hello there", "general"]);
  assertEquals(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
  assertEquals(displayWidth("noon 🍜"), 7);
  const rows = sideBySide([
    { title: "left", lines: ["a 🍜"] },
    { title: "right", lines: ["one", "two"] },
  ], 27);
  assertEquals(rows, [
    "left         │ right",
    "──────────── │ ────────────",
    "a 🍜         │ one",
    "             │ two",
  ]);
  for (const row of rows) {
    assertEquals(displayWidth(row.split(" │ ")[0]!), 12);
  }
});
