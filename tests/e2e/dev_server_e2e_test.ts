/**
 * Against `deno task dev` in a separate process: the demo runs to the end and finds no
 * plaintext on the server, and a connected client rides out a server crash - its stream comes
 * back by itself and a send made while the server is down goes through once it is up again.
 */

import { join } from "node:path";
import { assert, assertEquals } from "../assert.ts";
import { GuardynClient } from "../../client/mod.ts";
import { DevServer } from "./dev_server.ts";
import { PASSPHRASE, PASSWORD, TEST_KDF, TEST_KEYS, uniqueName } from "./e2e_test_kit.ts";
import { NO_SANITIZERS, waitUntil } from "../support/wait.ts";

Deno.test({
  name: "dev server: deno task demo runs end to end and finds only ciphertext on the server",
  ...NO_SANITIZERS,
  fn: async () => {
    const server = await DevServer.start();
    try {
      const demo = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL("../../client/demo.ts", import.meta.url).pathname],
        env: { GUARDYN_SERVER: server.address, SQLITE_PATH: server.sqlitePath, NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const out = new TextDecoder().decode(demo.stdout);
      const err = new TextDecoder().decode(demo.stderr);
      assertEquals(demo.code, 0, `${out}\n${err}`);
      assert(out.includes("They match on every device."), out);
      assertEquals(out.match(/plaintext in the server's rows: none/g)?.length, 5, out);
      assert(/Group fingerprint on every device: .+ \(all equal: no fork\)/.test(out), out);
      assertEquals(out.match(/carol: Table for four/g)?.length, 3, out);
      assert(/Bob saved 204800 bytes, identical; the server's/.test(out), out);
      assert(out.includes("plaintext in the server's blob: none"), out);
      assert(/caught [1-9]\d* stored envelopes/.test(out), out);
      assert(!out.includes("plaintext in the server's rows: YES"), out);
    } finally {
      await server.remove();
    }
  },
});

Deno.test({
  name: "dev server: a client reconnects after a crash and a send retries until the server is back",
  ...NO_SANITIZERS,
  fn: async () => {
    const server = await DevServer.start({ MESSAGING_STREAM_OPENS_PER_MINUTE: "1000" });
    const dir = await Deno.makeTempDir({ prefix: "guardyn-reconnect-" });
    const open = (name: string) =>
      GuardynClient.open({
        server: server.address,
        profilePath: join(dir, `${name}.profile`),
        passphrase: PASSPHRASE,
        kdf: TEST_KDF,
        keyPolicy: TEST_KEYS,
        backoff: { baseMs: 100, capMs: 500 },
      });
    const alice = await open("alice");
    const bob = await open("bob");
    try {
      await alice.register(uniqueName("alice"), PASSWORD);
      const bobAccount = await bob.register(uniqueName("bob"), PASSWORD);
      const states: string[] = [];
      bob.on((event) => event.type === "connection" && states.push(event.state));
      bob.connect();
      await waitUntil(() => bob.online, "bob online");
      await alice.sendText(bobAccount.accountId, "before the crash");
      await waitUntil(() => bob.messages(alice.account!.accountId).length === 1, "first message");

      await server.kill();
      await waitUntil(() => states.includes("offline"), "bob notices");
      // Sent while the server is down: the SDK retries with backoff until it is back.
      const sending = alice.sendText(bobAccount.accountId, "during the outage");
      await new Promise((resolve) => setTimeout(resolve, 300));
      await server.restart();
      const sent = await sending;
      assertEquals(sent.status, "sent");
      await waitUntil(
        () => bob.messages(alice.account!.accountId).length === 2,
        "bob catches up",
        30_000,
      );
      assertEquals(bob.messages(alice.account!.accountId).map((m) => m.body), [
        "before the crash",
        "during the outage",
      ]);
      await waitUntil(
        () => states.lastIndexOf("online") > states.indexOf("offline"),
        "back online",
      );
    } finally {
      await alice.close();
      await bob.close();
      await server.remove();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
