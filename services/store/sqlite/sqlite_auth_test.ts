/**
 * The auth stores on SQLite: the shared conformance suite, plus what only a file can show:
 * two connections (as two processes would) share one username space and one key stock.
 */
import { join } from "node:path";
import { assert, assertEquals } from "../../../tests/assert.ts";
import { UsernameTakenError } from "../auth_ports.ts";
import { authStoreSuite } from "../conformance/auth_suite.ts";
import { openSqliteStore } from "./sqlite_store.ts";
import { SQLITE_PORTS } from "../../runtime/store_ports.ts";

// One temporary folder per test file; each test gets its own database file in it.
const dir = await Deno.makeTempDir({ prefix: "guardyn-sqlite-auth-" });
let files = 0;
const freshPath = () => join(dir, `auth-${++files}.db`);

authStoreSuite("sqlite", async () => {
  const store = await openSqliteStore(freshPath(), { ports: SQLITE_PORTS });
  return { stores: store.auth, close: () => store.close() };
});

Deno.test("sqlite auth: two connections on one file share usernames and one-time keys", async () => {
  const path = freshPath();
  const [a, b] = [
    await openSqliteStore(path, { ports: SQLITE_PORTS }),
    await openSqliteStore(path, { ports: SQLITE_PORTS }),
  ];
  try {
    const account = (id: string) => ({
      id,
      username: "shared_name",
      passwordHash: "$argon2id$x",
      createdAtMs: 1,
    });
    await a.auth.accounts.create(account("acct-a"));
    const taken = await b.auth.accounts.create(account("acct-b")).catch((error) => error);
    assert(taken instanceof UsernameTakenError, String(taken));

    const device = { accountId: "acct-a", deviceId: "d1" };
    const keys = Array.from({ length: 20 }, (_, i) => ({
      keyId: i + 1,
      publicKey: new Uint8Array(33).fill(i),
    }));
    await a.auth.prekeys.addOneTime(device, "ec", keys, 100);
    const bundles = await Promise.all(
      Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).auth.prekeys.claimBundle(device)),
    );
    const ids = bundles.flatMap((bundle) => bundle.oneTimePrekey?.keyId ?? []);
    assertEquals(ids.length, 20);
    assertEquals(new Set(ids).size, 20);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("sqlite auth: cleanup of the temporary folder", async () => {
  await Deno.remove(dir, { recursive: true });
});
