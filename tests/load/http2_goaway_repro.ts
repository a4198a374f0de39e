/**
 * Reproduces a Deno 2.9 runtime abort that any Guardyn service is exposed to: a bare grpc-js
 * server (no Guardyn code) dies inside nghttp2 when a client that made about a thousand calls
 * on one HTTP/2 connection closes it gracefully (GOAWAY):
 *
 *   deno: nghttp2/lib/nghttp2_session.c:2402: int find_stream_on_goaway_func(void *, void *):
 *   Assertion `stream->closed_next == NULL' failed.        (exit 134; sometimes SIGSEGV, 139)
 *
 * Same family as denoland/deno#36788. Not run by `deno test`:
 *
 *   deno run -A tests/load/http2_goaway_repro.ts [calls per connection, default 1000]
 */

import * as grpc from "@grpc/grpc-js";
import { listenOnLoopback, rawMethod } from "./raw_grpc.ts";

const METHOD = rawMethod("/guardyn.repro.Echo/Echo");

type EchoClient = grpc.Client & {
  echo(request: Uint8Array, callback: (error: grpc.ServiceError | null) => void): void;
};

function serve(): void {
  const server = new grpc.Server();
  server.addService({ echo: METHOD }, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
      callback(null, call.request),
  });
  listenOnLoopback(server).then((port) => console.log(`port ${port}`));
}

async function drive(calls: number): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--serve"],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  const port = Number(
    /port (\d+)/.exec(new TextDecoder().decode((await reader.read()).value))?.[1],
  );
  const Echo = grpc.makeGenericClientConstructor({ echo: METHOD }, "Echo");
  for (let round = 1; round <= 5; round++) {
    const client = new Echo(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
    }) as unknown as EchoClient;
    const one = () =>
      new Promise<void>((resolve, reject) =>
        client.echo(new Uint8Array(64), (error) => error ? reject(error) : resolve())
      );
    await Promise.all(Array.from({ length: 32 }, async () => {
      for (let i = 0; i < calls / 32; i++) await one();
    }));
    client.close(); // graceful: the server receives GOAWAY
    await new Promise((resolve) => setTimeout(resolve, 300));
    const exited = await Promise.race([
      child.status,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10)),
    ]);
    console.log(
      `round ${round}: ${calls} calls, client closed: server ${
        exited ? `DIED (exit ${exited.code}, signal ${exited.signal})` : "alive"
      }`,
    );
    if (exited) return;
  }
  child.kill("SIGKILL");
  await child.status;
}

if (import.meta.main) {
  if (Deno.args.includes("--serve")) serve();
  else await drive(Math.max(32, Number(Deno.args[0] ?? 1000)));
}
