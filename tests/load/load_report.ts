/**
 * Writes a messaging load run into docs/BENCHMARKS.md (`messaging_load.ts --write=FILE`): a
 * Markdown table rendered from the run's JSON, placed between two marker comments so a new run
 * replaces the previous one and the hand-written analysis around it stays. Pure except
 * `writeLoadReport`.
 */

export const REPORT_BEGIN =
  "<!-- messaging-load:begin (written by tests/load/messaging_load.ts --write) -->";
export const REPORT_END = "<!-- messaging-load:end -->";

interface Sustained {
  envelopesPerSend: number;
  deliveredPerSecond: number;
  sendsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuUsPerSend: number;
  loadGeneratorCpuUsPerSend: number;
  failed: number;
  undelivered: number;
}

interface Fixed {
  targetPerSecond: number;
  achievedPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
  undelivered: number;
}

interface Floor {
  messagesPerSecond: number;
  p99Ms: number;
  serverCpuUsPerMessage: number;
}

/** The parts of a run this report reads; every section is optional (`--only`). */
export interface LoadRun {
  machine: { cpus: number; deno: string };
  seconds: number;
  concurrency: number;
  echo?: { roundTripsPerSecond: number; p50Ms: number; p99Ms: number };
  transportFloor?: { unarySend: Floor; streamedSends: Floor };
  embedded?: Record<string, Sustained | Fixed>;
  cluster?: Record<string, Sustained | Fixed>;
  idle?: {
    streams: number;
    failed: number;
    rssBytesPerStream: number;
    jsHeapBytesPerStream: number;
    liveP50Ms: number;
    liveP99Ms: number;
  };
  failures?: Record<string, number>;
}

const n = (value: number) => Math.round(value).toLocaleString("en-US");

function sustainedCell(run: Sustained | undefined): string {
  if (!run) return "";
  const what = run.envelopesPerSend === 1
    ? `${n(run.deliveredPerSecond)} messages/s`
    : `${n(run.deliveredPerSecond)} envelopes/s (${n(run.sendsPerSecond)} messages/s)`;
  return `${what}, p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms; server CPU ` +
    `${run.serverCpuUsPerSend} µs per message; ${run.failed} failed, ${run.undelivered} lost`;
}

function fixedCell(run: Fixed | undefined): string {
  if (!run) return "";
  return `${n(run.achievedPerSecond)} of ${n(run.targetPerSecond)}/s, p50 ${run.p50Ms} ms, ` +
    `p99 ${run.p99Ms} ms; ${run.failed} failed, ${run.undelivered} lost`;
}

/** The Markdown for one run (without the markers). */
export function renderLoadReport(run: LoadRun, at: Date): string {
  const lines = [
    `Last written run: ${at.toISOString().slice(0, 16).replace("T", " ")} UTC, ` +
    `${run.machine.cpus} CPUs, Deno ${run.machine.deno}, ${run.seconds} s per measurement, ` +
    `${run.concurrency} sends in flight.`,
    "",
  ];
  if (run.echo || run.transportFloor) {
    lines.push("| ceiling | figures |", "| --- | --- |");
    if (run.echo) {
      lines.push(
        `| bare grpc-js unary echo | ${n(run.echo.roundTripsPerSecond)} round trips/s, ` +
          `p50 ${run.echo.p50Ms} ms, p99 ${run.echo.p99Ms} ms |`,
      );
    }
    if (run.transportFloor) {
      for (
        const [name, floor] of [
          ["transport floor, unary sends", run.transportFloor.unarySend],
          ["transport floor, streamed sends", run.transportFloor.streamedSends],
        ] as const
      ) {
        lines.push(
          `| ${name} | ${n(floor.messagesPerSecond)} messages/s, p99 ${floor.p99Ms} ms, ` +
            `${floor.serverCpuUsPerMessage} µs server CPU per message |`,
        );
      }
    }
    lines.push("");
  }
  const backends = (["embedded", "cluster"] as const).filter((b) => run[b] !== undefined);
  if (backends.length > 0) {
    const title = { embedded: "embedded (SQLite)", cluster: "Cassandra + JetStream" };
    lines.push(
      `| run | ${backends.map((b) => title[b]).join(" | ")} |`,
      `| --- | ${backends.map(() => "---").join(" | ")} |`,
    );
    const row = (label: string, cell: (results: Record<string, Sustained | Fixed>) => string) =>
      lines.push(`| ${label} | ${backends.map((b) => cell(run[b]!)).join(" | ")} |`);
    const fixedKey = (results: Record<string, unknown>, streamed: boolean) =>
      Object.keys(results).find((k) =>
        /^fixed\d+/.test(k) && k.endsWith("SendStream") === streamed
      );
    row("sustained, 1 envelope, SendMessage", (r) => sustainedCell(r.sustained as Sustained));
    row(
      "sustained, 1 envelope, SendStream",
      (r) => sustainedCell(r.sustainedSendStream as Sustained),
    );
    row(
      "sustained, 3 envelopes (2-device accounts), SendMessage",
      (r) => sustainedCell(r.multiDevice as Sustained),
    );
    row(
      "sustained, 3 envelopes (2-device accounts), SendStream",
      (r) => sustainedCell(r.multiDeviceSendStream as Sustained),
    );
    row("fixed rate, SendMessage", (r) => fixedCell(r[fixedKey(r, false) ?? ""] as Fixed));
    row("fixed rate, SendStream", (r) => fixedCell(r[fixedKey(r, true) ?? ""] as Fixed));
    lines.push("");
  }
  if (run.idle) {
    const i = run.idle;
    lines.push(
      `Idle streams: ${n(i.streams)} open (${i.failed} failed), ${n(i.rssBytesPerStream)} bytes ` +
        `of RSS and ${n(i.jsHeapBytesPerStream)} bytes of JS heap per stream; a live message ` +
        `meanwhile arrives in p50 ${i.liveP50Ms} ms, p99 ${i.liveP99Ms} ms.`,
      "",
    );
  }
  if (run.failures && Object.keys(run.failures).length > 0) {
    lines.push(
      "Failed sends: " +
        Object.entries(run.failures).map(([what, count]) => `${count} × ${what}`).join("; "),
      "",
    );
  }
  return lines.join("\n").trimEnd();
}

/** `doc` with the report between the markers (appended with its markers when absent). */
export function placeLoadReport(doc: string, report: string): string {
  const block = `${REPORT_BEGIN}\n\n${report}\n\n${REPORT_END}`;
  const begin = doc.indexOf(REPORT_BEGIN);
  const end = doc.indexOf(REPORT_END);
  if (begin === -1 || end === -1 || end < begin) {
    return `${doc.trimEnd()}\n\n${block}\n`;
  }
  return doc.slice(0, begin) + block + doc.slice(end + REPORT_END.length);
}

export async function writeLoadReport(file: string, run: LoadRun, at = new Date()) {
  const doc = await Deno.readTextFile(file);
  await Deno.writeTextFile(file, placeLoadReport(doc, renderLoadReport(run, at)));
}
