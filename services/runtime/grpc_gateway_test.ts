/**
 * The native gRPC gateway workers: native clients are served through them, and a worker that
 * aborts (as nghttp2 makes it: SIGABRT) costs only itself; the port keeps answering through its
 * sibling and a replacement listens within a second.
 */

import { join } from "node:path";
import { assert, assertEquals } from "../../tests/assert.ts";
import { nativeAnswers } from "../../tests/abuse/abuse_kit.ts";
import { startPlatform } from "../../tests/support/platform.ts";
import { GuardynClient } from "../../client/mod.ts";
import { PASSPHRASE, PASSWORD, TEST_KDF, TEST_KEYS } from "../../tests/e2e/e2e_test_kit.ts";
import { NO_SANITIZERS, waitUntil } from "../../tests/support/wait.ts";
import { makeTestCertificates } from "../../tests/support/test_ca.ts";

Deno.test({
  name: "gateway workers: an aborted worker is replaced and the port never stops answering",
  ...NO_SANITIZERS,
  fn: async () => {
    const platform = await startPlatform(["auth"], {
      env: { GRPC_LISTENER: "workers", GRPC_WORKERS: "2" },
    });
    const gateway = platform.platform.gateway!;
    const port = platform.platform.grpcPort;
    try {
      assertEquals(gateway.listening, 2);
      assert(await nativeAnswers(port), "native gRPC answers through the workers");
      const [victim] = gateway.pids;
      const abortedAt = Date.now();
      Deno.kill(victim!, "SIGABRT");
      // Calls on the dying worker are lost with it; once it is gone, the sibling holds the port
      // and every probe is answered, before and after the replacement starts.
      await waitUntil(() => !gateway.pids.includes(victim!) || gateway.restarts > 0, "the exit");
      for (let i = 0; i < 10; i++) assert(await nativeAnswers(port), `probe ${i} after the abort`);
      await waitUntil(() => gateway.restarts === 1 && gateway.listening === 2, "a replacement");
      const back = Date.now() - abortedAt;
      Deno.stdout.writeSync(
        new TextEncoder().encode(
          `gateway: replacement worker listening ${back} ms after the abort\n`,
        ),
      );
      assert(!gateway.pids.includes(victim!));
      assert(await nativeAnswers(port));
      const metrics = await platform.platform.deps.metrics.registry.metrics();
      assert(metrics.includes("guardyn_grpc_worker_restarts_total 1"), metrics);
    } finally {
      await platform.stop();
    }
  },
});

Deno.test({
  name: "HTTP listener with TLS: Connect over HTTPS; the workers still serve native gRPC",
  ...NO_SANITIZERS,
  fn: async () => {
    const { dir, caFile, certFile: cert, keyFile: key } = await makeTestCertificates();
    const platform = await startPlatform(["auth"], {
      env: {
        GRPC_LISTENER: "workers",
        GRPC_WORKERS: "1",
        HTTP_TLS_CERT_FILE: cert,
        HTTP_TLS_KEY_FILE: key,
      },
    });
    const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(caFile)] });
    try {
      const response = await fetch(`https://${platform.address}/grpc.health.v1.Health/Check`, {
        method: "POST",
        headers: { "content-type": "application/proto" },
        body: new Uint8Array(0),
        client,
      } as RequestInit);
      assertEquals([...new Uint8Array(await response.arrayBuffer())], [0x08, 0x01], "SERVING");
      // The workers forward over a loopback-only plaintext listener of their own.
      assert(await nativeAnswers(platform.platform.grpcPort), "native gRPC through the workers");
      const plain = await fetch(`http://${platform.address}/grpc.health.v1.Health/Check`, {
        method: "POST",
        headers: { "content-type": "application/proto" },
        body: new Uint8Array(0),
      }).then(() => "answered", () => "refused");
      assertEquals(plain, "refused", "no plaintext on a TLS listener");
    } finally {
      client.close();
      await platform.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "gateway workers: an SDK client on native gRPC talks to one on gRPC-Web",
  ...NO_SANITIZERS,
  fn: async () => {
    const platform = await startPlatform(["auth", "messaging"], {
      env: { GRPC_LISTENER: "workers", GRPC_WORKERS: "2" },
    });
    const dir = await Deno.makeTempDir({ prefix: "guardyn-native-sdk-" });
    const open = async (name: string, protocol: "web" | "grpc") => {
      const client = await GuardynClient.open({
        server: protocol === "grpc" ? platform.grpcAddress : platform.address,
        protocol,
        profilePath: join(dir, `${name}.profile`),
        passphrase: PASSPHRASE,
        kdf: TEST_KDF,
        keyPolicy: TEST_KEYS,
      });
      await client.register(`${name}_${crypto.randomUUID().slice(0, 8)}`, PASSWORD);
      client.connect();
      await waitUntil(() => client.online, `${name} online`);
      return client;
    };
    const native = await open("nat", "grpc");
    const web = await open("web", "web");
    try {
      await native.sendText(web.account!.username, "from native gRPC");
      await waitUntil(() => web.messages(native.account!.accountId).length === 1, "web receives");
      await web.sendText(native.account!.accountId, "from gRPC-Web");
      await waitUntil(
        () => native.messages(web.account!.accountId).some((m) => m.body === "from gRPC-Web"),
        "native receives over its bidirectional stream through the workers",
      );
    } finally {
      await Promise.allSettled([native.close(), web.close()]);
      await platform.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
