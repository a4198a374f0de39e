/**
 * A real coturn (Debian's `turnserver`) on loopback for tests, with `use-auth-secret`: it
 * accepts the REST-scheme credentials of services/media/turn_credentials.ts for `secret` and
 * nothing else. Loopback peers are allowed here only because both test peers are local; the
 * shipped configuration (infra/) denies them. Its verbose log is kept to check allocations.
 */

import { freePort } from "./net.ts";

export interface Coturn {
  port: number;
  secret: string;
  /** Everything coturn logged so far. */
  log(): string;
  stop(): Promise<void>;
}

export async function startCoturn(secret: string): Promise<Coturn> {
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "guardyn-turn-" });
  const relayFrom = 40_000 + Math.floor(Math.random() * 10_000);
  const server = new Deno.Command("turnserver", {
    args: [
      "-n",
      "-v",
      "--listening-ip=127.0.0.1",
      `--listening-port=${port}`,
      "--relay-ip=127.0.0.1",
      "--use-auth-secret",
      `--static-auth-secret=${secret}`,
      "--realm=guardyn.test",
      "--no-tls",
      "--no-dtls",
      "--no-cli",
      "--log-file=stdout",
      "--simple-log",
      "--allow-loopback-peers",
      `--min-port=${relayFrom}`,
      `--max-port=${relayFrom + 100}`,
      `--db=${dir}/turndb`,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let log = "";
  const reading = (async () => {
    for await (const chunk of server.stdout) log += new TextDecoder().decode(chunk);
  })();
  // Ready once it listens (its log says so); give up after 10 s.
  const until = Date.now() + 10_000;
  while (!/listener opened on|Total (UDP|General) servers/.test(log)) {
    if (Date.now() > until) {
      server.kill("SIGKILL");
      throw new Error(`coturn did not start:\n${log.slice(-2000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    secret,
    log: () => log,
    async stop() {
      server.kill("SIGTERM");
      await server.status;
      await reading;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
