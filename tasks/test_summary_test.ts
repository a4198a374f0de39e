import { assertEquals } from "../tests/assert.ts";
import { lastStartedTest, parseDenoTestSummary } from "./test_summary.ts";

Deno.test("test summary: reads the last totals line, with steps, colors and failures", () => {
  assertEquals(parseDenoTestSummary("ok | 12 passed | 0 failed (2s)"), { passed: 12, failed: 0 });
  assertEquals(
    parseDenoTestSummary("x\nFAILED | 40 passed (7 steps) | 2 failed | 1 ignored (9s)\n"),
    { passed: 40, failed: 2 },
  );
  assertEquals(
    parseDenoTestSummary("\x1b[0m\x1b[32mok\x1b[0m | 3 passed | 0 failed \x1b[0m(1s)"),
    { passed: 3, failed: 0 },
  );
  assertEquals(parseDenoTestSummary("error: Module not found"), null);
});

Deno.test("lastStartedTest names the test that was running when the output stopped", () => {
  const output =
    "a: one ... ok (1ms)\nb: two ... FAILED (2ms)\nc: three ...\n------- output -------\n";
  assertEquals(lastStartedTest(output), "c: three");
  assertEquals(lastStartedTest("a: one ... ok (1ms)\n"), "a: one");
  assertEquals(lastStartedTest("nothing\n"), undefined);
});
