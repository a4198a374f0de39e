import { assert, assertEquals } from "../assert.ts";
import {
  type LoadRun,
  placeLoadReport,
  renderLoadReport,
  REPORT_BEGIN,
  REPORT_END,
} from "./load_report.ts";

const sustained = (delivered: number, envelopes = 1) => ({
  envelopesPerSend: envelopes,
  deliveredPerSecond: delivered,
  sendsPerSecond: delivered / envelopes,
  p50Ms: 10,
  p99Ms: 40,
  serverCpuUsPerSend: 200,
  loadGeneratorCpuUsPerSend: 100,
  failed: 0,
  undelivered: 0,
});
const fixed = {
  targetPerSecond: 1000,
  achievedPerSecond: 999,
  p50Ms: 3,
  p99Ms: 20,
  failed: 0,
  undelivered: 0,
};

const run: LoadRun = {
  machine: { cpus: 2, deno: "2.9.6" },
  seconds: 5,
  concurrency: 64,
  echo: { roundTripsPerSecond: 6000, p50Ms: 9, p99Ms: 40 },
  embedded: {
    sustained: sustained(2300),
    sustainedSendStream: sustained(4500),
    multiDevice: sustained(4800, 3),
    multiDeviceSendStream: sustained(6300, 3),
    fixed1000: fixed,
    fixed1000SendStream: { ...fixed, p99Ms: 12 },
  },
};

Deno.test("load report: renders what ran, one column per backend", () => {
  const report = renderLoadReport(run, new Date("2026-11-22T05:50:00Z"));
  assert(report.startsWith("Last written run: 2026-11-22 05:50 UTC, 2 CPUs, Deno 2.9.6"));
  assert(report.includes("| bare grpc-js unary echo | 6,000 round trips/s"), report);
  assert(report.includes("| run | embedded (SQLite) |"), report);
  assert(!report.includes("Cassandra"), "a backend that did not run has no column");
  assert(report.includes("| sustained, 1 envelope, SendStream | 4,500 messages/s, p50 10 ms"));
  assert(report.includes("6,300 envelopes/s (2,100 messages/s)"), report);
  assert(report.includes("| fixed rate, SendStream | 999 of 1,000/s, p50 3 ms, p99 12 ms"));
});

Deno.test("load report: replaces the previous report between the markers, keeps the rest", () => {
  const doc =
    `# Benchmarks\n\nintro\n\n${REPORT_BEGIN}\n\nold figures\n\n${REPORT_END}\n\nanalysis\n`;
  const placed = placeLoadReport(doc, "new figures");
  assertEquals(
    placed,
    `# Benchmarks\n\nintro\n\n${REPORT_BEGIN}\n\nnew figures\n\n${REPORT_END}\n\nanalysis\n`,
  );
  assertEquals(placeLoadReport(placed, "newer"), placed.replace("new figures", "newer"));
  const appended = placeLoadReport("# Benchmarks\n", "first");
  assertEquals(appended, `# Benchmarks\n\n${REPORT_BEGIN}\n\nfirst\n\n${REPORT_END}\n`);
});
