/**
 * A real Kubernetes control plane on loopback, for tests and for trying the cluster tasks on a
 * machine without a container engine: etcd, kube-apiserver (RBAC, token authentication, the
 * default admission plugins with Pod Security), kube-controller-manager and kube-scheduler, all
 * built from the Go module proxy by infra/tools/install.sh (cached in $GUARDYN_CACHE/bin). No
 * kubelet runs: pods are scheduled but never start unless fake nodes (kwok) mark them running.
 *
 *   deno run -A tasks/kube_api.ts    starts one, prints the kubeconfig path, stops on Ctrl-C
 */

import { join } from "node:path";
import { cacheDir, freePort, runChecked } from "./kube_tools.ts";

export interface KubeApi {
  /** A kubeconfig with a cluster-admin token for this API server (context "guardyn-test"). */
  kubeconfig: string;
  context: string;
  server: string;
  stop(): Promise<void>;
}

export const CONTROL_PLANE_BINARIES = [
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kubectl",
] as const;

/** Where the control plane binaries are, or undefined when one of `names` is missing. */
export async function controlPlaneBin(
  names: readonly string[] = CONTROL_PLANE_BINARIES,
): Promise<string | undefined> {
  const bin = join(cacheDir(), "controlplane", "bin");
  for (const name of names) {
    if (!(await Deno.stat(join(bin, name)).then((s) => s.isFile, () => false))) return undefined;
  }
  return bin;
}

export async function startKubeApi(options: { withControllers?: boolean } = {}): Promise<KubeApi> {
  const bin = await controlPlaneBin(
    options.withControllers ? CONTROL_PLANE_BINARIES : ["etcd", "kube-apiserver", "kubectl"],
  );
  if (!bin) throw new Error("no control plane built: run bash infra/tools/install.sh");
  const dir = await Deno.makeTempDir({ prefix: "guardyn-kube-api-" });
  const children: Deno.ChildProcess[] = [];
  const logs: Promise<void>[] = [];
  const launch = (name: string, args: string[]) => {
    const child = new Deno.Command(join(bin, name), {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const file = Deno.openSync(join(dir, `${name}.log`), { write: true, create: true });
    logs.push(child.stdout.pipeTo(file.writable, { preventClose: true }).catch(() => {}));
    logs.push(
      child.stderr.pipeTo(
        Deno.openSync(join(dir, `${name}.log`), { write: true, append: true }).writable,
      ).catch(() => {}),
    );
    children.push(child);
    return child;
  };
  const stop = async () => {
    for (const child of children.toReversed()) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.status;
    }
    await Promise.allSettled(logs);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    const [etcdPort, peerPort, apiPort] = [freePort(), freePort(), freePort()];
    launch("etcd", [
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      "--log-level=error",
    ]);
    // The service account signing key, and a cluster-admin token (never printed).
    await runChecked("openssl", [
      "ecparam",
      "-name",
      "prime256v1",
      "-genkey",
      "-noout",
      "-out",
      join(dir, "sa.key"),
    ]);
    await runChecked("openssl", [
      "ec",
      "-in",
      join(dir, "sa.key"),
      "-pubout",
      "-out",
      join(dir, "sa.pub"),
    ]);
    const token = crypto.randomUUID().replaceAll("-", "");
    await Deno.writeTextFile(
      join(dir, "tokens.csv"),
      `${token},guardyn-admin,guardyn-admin,"system:masters"\n`,
      { mode: 0o600 },
    );
    const server = `https://127.0.0.1:${apiPort}`;
    launch("kube-apiserver", [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, "certs")}`,
      `--token-auth-file=${join(dir, "tokens.csv")}`,
      "--authorization-mode=RBAC",
      "--service-account-issuer=https://kubernetes.default.svc",
      `--service-account-key-file=${join(dir, "sa.pub")}`,
      `--service-account-signing-key-file=${join(dir, "sa.key")}`,
      "--service-cluster-ip-range=10.96.0.0/16",
      "--allow-privileged=false",
      "--v=0",
    ]);
    const kubeconfig = join(dir, "kubeconfig");
    await Deno.writeTextFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "guardyn-test", cluster: { server, "insecure-skip-tls-verify": true } }],
        users: [{ name: "guardyn-admin", user: { token } }],
        contexts: [{
          name: "guardyn-test",
          context: { cluster: "guardyn-test", user: "guardyn-admin" },
        }],
        "current-context": "guardyn-test",
      }),
      { mode: 0o600 },
    );
    const kubectl = join(bin, "kubectl");
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ready = await new Deno.Command(kubectl, {
        args: ["--kubeconfig", kubeconfig, "get", "--raw", "/readyz"],
        stdout: "piped",
        stderr: "null",
      }).output();
      if (ready.success) break;
      if (Date.now() > deadline) {
        const log = await Deno.readTextFile(join(dir, "kube-apiserver.log")).catch(() => "");
        throw new Error(`kube-apiserver not ready within 60 s:\n${log.slice(-3000)}`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    if (options.withControllers) {
      launch("kube-controller-manager", [
        `--kubeconfig=${kubeconfig}`,
        `--service-account-private-key-file=${join(dir, "sa.key")}`,
        "--bind-address=127.0.0.1",
        `--secure-port=${freePort()}`,
        "--leader-elect=false",
        "--controllers=*,-nodeipam",
      ]);
      launch("kube-scheduler", [
        `--kubeconfig=${kubeconfig}`,
        "--bind-address=127.0.0.1",
        `--secure-port=${freePort()}`,
        "--leader-elect=false",
      ]);
    }
    return { kubeconfig, context: "guardyn-test", server, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

if (import.meta.main) {
  const api = await startKubeApi({ withControllers: true });
  console.log(`kube-api: ${api.server}; KUBECONFIG=${api.kubeconfig} (context ${api.context})`);
  Deno.addSignalListener("SIGINT", () => void api.stop().then(() => Deno.exit(0)));
}
