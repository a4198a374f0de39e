/**
 * An NGINX (Debian package) in front of a local instance, configured as the Kubernetes ingress
 * is (infra/k8s/overlays/prod/ingress-tls/patch.yaml): clients speak HTTP/2 to NGINX, NGINX
 * speaks plain HTTP/2 (grpc_pass) over kept-alive connections to the instance's HTTP listener
 * (gRPC-Web and Connect on Deno.serve), and sets x-forwarded-for. TLS is left out: it changes
 * nothing between NGINX and the pods.
 */

import { join } from "node:path";
import { freePort, waitForPort } from "../support/net.ts";

export interface Nginx {
  port: number;
  /** NGINX's error log (connection errors it saw). */
  errors(): Promise<string>;
  stop(): Promise<void>;
}

/** The proxy settings shared with the ingress (keep-alive and timeouts toward the pods). */
export function nginxConfig(dir: string, listenPort: number, upstreamPort: number): string {
  const temp = (name: string) => join(dir, name);
  return `
${Deno.uid() === 0 ? "user root;" : ""}
worker_processes 1;
daemon off;
pid ${temp("nginx.pid")};
error_log ${temp("error.log")} warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${temp("body")};
  proxy_temp_path ${temp("proxy")};
  fastcgi_temp_path ${temp("fastcgi")};
  uwsgi_temp_path ${temp("uwsgi")};
  scgi_temp_path ${temp("scgi")};
  upstream guardyn {
    server 127.0.0.1:${upstreamPort};
    # Long-lived connections to the pod: few handshakes, no churn of HTTP/2 sessions.
    keepalive 64;
    keepalive_requests 100000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:${listenPort} http2;
    http2_max_concurrent_streams 128;
    client_max_body_size 8m;
    location / {
      grpc_pass grpc://guardyn;
      grpc_read_timeout 3600s;
      grpc_send_timeout 3600s;
      grpc_set_header x-forwarded-for $proxy_add_x_forwarded_for;
    }
  }
}
`;
}

export async function startNginx(upstreamPort: number): Promise<Nginx> {
  const dir = await Deno.makeTempDir({ prefix: "guardyn-nginx-" });
  const port = freePort();
  const config = join(dir, "nginx.conf");
  await Deno.writeTextFile(config, nginxConfig(dir, port, upstreamPort));
  const child = new Deno.Command("nginx", {
    args: ["-c", config, "-p", dir, "-e", join(dir, "error.log")],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  if (!await waitForPort(port, 10_000)) {
    child.kill("SIGKILL");
    throw new Error(`nginx did not start: ${await stderr}`);
  }
  return {
    port,
    errors: () => Deno.readTextFile(join(dir, "error.log")).catch(() => ""),
    stop: async () => {
      try {
        child.kill("SIGQUIT");
      } catch { /* already gone */ }
      await child.status;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
