/**
 * `deno task test`: runs every test suite against real backends. Uses NATS_URL and
 * CQL_CONTACT_POINTS when set; otherwise starts a private nats-server (JetStream) and Apache
 * Cassandra (.ci/cassandra.sh), and stops what it started. The last line it prints is
 * `N passed, N failed`.
 */

import { startBackends } from "./test_backends.ts";
import { lastStartedTest, parseDenoTestSummary } from "./test_summary.ts";

const started = performance.now();
// Install what the suites need when missing (idempotent; about a second when all is there), so
// `npx deno task ok` works on a fresh machine. CI has just run it: GUARDYN_SKIP_INSTALL=1.
if (Deno.env.get("GUARDYN_SKIP_INSTALL") !== "1") {
  const script = new URL("../.ci/install.sh", import.meta.url).pathname;
  const install = await new Deno.Command("bash", {
    args: [script],
    stdout: "inherit",
    stderr: "inherit",
  })
    .output();
  if (!install.success) {
    console.error("test: installing the test tools failed (see above); nothing was run");
    console.log("0 passed, 1 failed");
    Deno.exit(1);
  }
}
const backends = await startBackends();
/**
 * One run, no reruns: the suites talk to servers over gRPC-Web (Deno.serve, which does not
 * abort) or to native gRPC in child processes, so a crash of the test process is a defect. It
 * fails the run loudly, with the signal and the last test that started.
 */
let exitCode = 1;
let summary = { passed: 0, failed: 0 };
try {
  const run = await runDenoTest(backends.env);
  if (run.summary === null || run.status.signal !== null) {
    console.error(
      `test: THE TEST PROCESS CRASHED (exit ${run.status.code}, signal ${run.status.signal}) ` +
        `before reporting; the last test that started: ${run.lastStarted ?? "none"}`,
    );
  }
  summary = run.summary ?? { passed: summary.passed, failed: 1 };
  exitCode = run.status.success && run.summary !== null && summary.failed === 0 ? 0 : 1;
} finally {
  await backends.stop();
}

async function runDenoTest(env: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    // --expose-gc: tests/e2e/files_e2e_test.ts tells held memory from uncollected garbage.
    args: ["test", "-A", "--no-prompt", "--v8-flags=--expose-gc", ...Deno.args],
    env: { ...env, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // Echo the test output live while keeping it to read the summary.
  const decoder = new TextDecoder();
  let output = "";
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    output += decoder.decode(chunk, { stream: true });
    if (output.length > 1_000_000) output = output.slice(-100_000);
  }
  const status = await child.status;
  return { status, summary: parseDenoTestSummary(output), lastStarted: lastStartedTest(output) };
}
const seconds = ((performance.now() - started) / 1000).toFixed(0);
console.log(`tests finished in ${seconds} s`);
console.log(`${summary.passed} passed, ${summary.failed} failed`);
Deno.exit(exitCode);
