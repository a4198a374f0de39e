/**
 * The shipped observability, for real: promtool checks the Prometheus configurations and the
 * rules and runs the rule unit tests (guardyn.rules.test.yml); a Prometheus started with the
 * shipped configuration scrapes a dev server (every service in one process) and loads the
 * rules; every metric the Grafana dashboard queries is one the server exports or a rule records.
 */
import { join } from "node:path";
import { assert, assertEquals } from "../tests/assert.ts";
import { freePort, run } from "./kube_tools.ts";
import { startLocalServer } from "./smoke_start.ts";
import { ROOT } from "./kube_test_kit.ts";
import { waitUntil } from "../tests/support/wait.ts";

const DIR = join(ROOT, "infra", "observability");

async function promtool(args: string[], cwd = DIR) {
  const result = await run("promtool", args, { cwd });
  assertEquals(result.code, 0, `promtool ${args.join(" ")}:\n${result.stdout}${result.stderr}`);
  return result.stdout + result.stderr;
}

Deno.test("observability: configurations and rules pass promtool check and their unit tests", async () => {
  assert((await promtool(["check", "config", "prometheus.yml"])).includes("SUCCESS"));
  // Debian's Prometheus is built without Kubernetes discovery, so its promtool cannot check
  // the Kubernetes configuration: check what it shares with the tested one instead.
  const kube = await Deno.readTextFile(join(DIR, "prometheus-kubernetes.yml"));
  assert(kube.includes("kubernetes_sd_configs") && kube.includes("regex: metrics"));
  assert(kube.includes("rules/guardyn.rules.yml") && kube.includes("job_name: guardyn"));
  assert((await promtool(["check", "rules", "rules/guardyn.rules.yml"])).includes("SUCCESS"));
  const tested = await promtool(["test", "rules", "guardyn.rules.test.yml"], join(DIR, "rules"));
  assert(tested.includes("SUCCESS"), tested);
  const cases = await Deno.readTextFile(join(DIR, "rules", "guardyn.rules.test.yml"));
  for (
    const alert of [
      "GuardynInstanceDown",
      "GuardynSendErrorRatioHigh",
      "GuardynMailboxBacklogGrowing",
      "GuardynPushFailures",
      "GuardynAbuseRejections",
    ]
  ) {
    assert(cases.includes(`alertname: ${alert}`), `a test case for ${alert}`);
  }
});

/** A dev server: every service in one process on loopback, embedded store. */
function devServer() {
  return startLocalServer(Deno.execPath(), ["run", "-A", join(ROOT, "services", "main.ts")]);
}

Deno.test({
  name: "observability: Prometheus scrapes a dev server with the shipped configuration",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "guardyn-prometheus-" });
    const server = await devServer();
    let prometheus: Deno.ChildProcess | undefined;
    try {
      // The shipped files as they are, beside a target file naming the dev server.
      await Deno.mkdir(join(dir, "rules"));
      await Deno.mkdir(join(dir, "targets"));
      await Deno.copyFile(join(DIR, "prometheus.yml"), join(dir, "prometheus.yml"));
      await Deno.copyFile(
        join(DIR, "rules", "guardyn.rules.yml"),
        join(dir, "rules", "guardyn.rules.yml"),
      );
      await Deno.writeTextFile(
        join(dir, "targets", "dev.json"),
        JSON.stringify([{ targets: [server.metrics], labels: { service: "all" } }]),
      );
      const port = freePort();
      prometheus = new Deno.Command("prometheus", {
        args: [
          `--config.file=${join(dir, "prometheus.yml")}`,
          `--storage.tsdb.path=${join(dir, "tsdb")}`,
          `--web.listen-address=127.0.0.1:${port}`,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      const api = `http://127.0.0.1:${port}/api/v1`;
      const query = async (promql: string) => {
        const response = await fetch(`${api}/query?query=${encodeURIComponent(promql)}`);
        const body = await response.json();
        return (body.data?.result ?? []) as { metric: Record<string, string>; value: unknown[] }[];
      };
      // The first scrape comes within one interval (15 s) of discovery.
      await waitUntil(
        async () => (await query('up{job="guardyn"} == 1').catch(() => [])).length === 1,
        "the dev server scraped and up",
        60_000,
      );
      const watches = await query("guardyn_presence_watches");
      assert(watches.length > 0, "Guardyn's own metrics are in Prometheus");
      assertEquals(watches[0]!.metric.service, "all", "the target's labels are kept");
      const rules = await (await fetch(`${api}/rules`)).json();
      const names = rules.data.groups.flatMap((g: { rules: { name: string }[] }) =>
        g.rules.map((r) => r.name)
      );
      assert(
        names.includes("GuardynInstanceDown") && names.includes("guardyn:send_requests:rate5m"),
      );

      // Every metric the dashboard queries exists: exported by the server or recorded by a rule.
      const exported = await (await fetch(`http://${server.metrics}/metrics`)).text();
      const dashboard = JSON.parse(
        await Deno.readTextFile(join(DIR, "grafana", "guardyn-dashboard.json")),
      );
      const exprs: string[] = dashboard.panels.flatMap((p: { targets: { expr: string }[] }) =>
        p.targets.map((t) => t.expr)
      );
      assert(exprs.length >= 8);
      for (const expr of exprs) {
        for (const [name] of expr.matchAll(/guardyn[_:][a-z0-9_:]+/g)) {
          const base = name.replace(/_(bucket|sum|count)$/, "");
          const known = names.includes(name) || new RegExp(`^# TYPE ${base} `, "m").test(exported);
          assert(known, `dashboard metric ${name} is neither exported nor recorded`);
        }
      }
    } finally {
      prometheus?.kill("SIGTERM");
      await prometheus?.status;
      await server.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
