/**
 * The credential scheme checked by coturn itself: a real turnserver with `use-auth-secret`
 * allocates a relay for a fresh credential and refuses a wrong, an expired, and a
 * differently-keyed one (turnutils_uclient from Debian's coturn package).
 */
import { assert, assertEquals } from "../../tests/assert.ts";
import { startCoturn } from "../../tests/support/coturn.ts";
import { freePort } from "../../tests/support/net.ts";
import { defaultTurnUrls, turnCredential } from "./turn_credentials.ts";

const SECRET = crypto.randomUUID() + crypto.randomUUID();

Deno.test("turn credentials: the coturn REST scheme, with no account id in the username", () => {
  const id = new Uint8Array(12).fill(1);
  const c = turnCredential(
    { secret: "0123456789abcdef", urls: ["turn:x:3478"], ttlSeconds: 3600 },
    1_000_000,
    id,
  );
  assertEquals(c.username, "4600:AQEBAQEBAQEBAQEB");
  // base64(HMAC-SHA1("0123456789abcdef", "4600:AQEBAQEBAQEBAQEB")), computed independently:
  // printf %s '4600:AQEBAQEBAQEBAQEB' | openssl dgst -binary -sha1 -hmac 0123456789abcdef | base64
  assertEquals(c.credential, "B/vqKXShqkOOk7DFEAr5UqEjE7o=");
  assertEquals(defaultTurnUrls("turn.example.org")[0], "turn:turn.example.org:3478?transport=udp");
});

async function allocate(port: number, username: string, password: string): Promise<boolean> {
  const run = await new Deno.Command("timeout", {
    args: [
      "5",
      "turnutils_uclient",
      "-u",
      username,
      "-w",
      password,
      "-p",
      String(port),
      "-n",
      "1",
      "-m",
      "1",
      "-l",
      "100",
      "-e",
      "127.0.0.1",
      "-r",
      String(freePort()),
      "127.0.0.1",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(run.stdout) + new TextDecoder().decode(run.stderr);
  return !out.includes("Cannot complete Allocation");
}

Deno.test({
  name: "turn credentials: coturn relays for a fresh one, refuses wrong and expired ones",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const coturn = await startCoturn(SECRET);
    const port = coturn.port;
    try {
      const now = Date.now();
      const good = turnCredential({ secret: SECRET, urls: [], ttlSeconds: 3600 }, now);
      assert(
        await allocate(port, good.username, good.credential),
        `a fresh credential works; coturn said:\n${coturn.log().slice(-2000)}`,
      );
      assert(
        coturn.log().includes(
          `user <${good.username}>: incoming packet ALLOCATE processed, success`,
        ),
        "coturn allocated a relay for it",
      );
      assert(!await allocate(port, good.username, "d3JvbmcgcGFzc3dvcmQ="), "a wrong password");
      const expired = turnCredential({ secret: SECRET, urls: [], ttlSeconds: 60 }, now - 3_600_000);
      assert(!await allocate(port, expired.username, expired.credential), "an expired one");
      const otherKey = turnCredential({
        secret: "another-secret-0123456789",
        urls: [],
        ttlSeconds: 3600,
      }, now);
      assert(!await allocate(port, otherKey.username, otherKey.credential), "another secret");
    } finally {
      await coturn.stop();
    }
  },
});
