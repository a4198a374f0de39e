/**
 * The CQL auth stores against a real node on CQL_CONTACT_POINTS (default 127.0.0.1:9042, e.g.
 * `.ci/cassandra.sh start`): the shared conformance suite, plus what only a cluster shows:
 * two instances claiming from one stock, recovery of a lightweight transaction whose answer
 * was lost, and takeover of an abandoned username reservation. One fresh keyspace per run
 * (schema changes are slow), migrated first and dropped last; without a node every test fails.
 */
import cassandra from "cassandra-driver";
import { assert, assertEquals, captureRejection } from "../../../tests/assert.ts";
import { UsernameTakenError } from "../auth_ports.ts";
import { authStoreSuite } from "../conformance/auth_suite.ts";
import { cqlAuthStores } from "./cql_auth.ts";
import type { Replication } from "./cql_options.ts";
import { connectCql, type CqlConfig, type CqlSession, driverSession } from "./cql_session.ts";
import { type CqlStore, openCqlStore } from "./cql_store.ts";
import { NO_SANITIZERS } from "../../../tests/support/wait.ts";
import { CQL_PORTS } from "../../runtime/store_ports.ts";

const contactPoints = (Deno.env.get("CQL_CONTACT_POINTS") ?? "127.0.0.1:9042").split(",");
const suffix = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
const config: CqlConfig = {
  backend: "cql",
  contactPoints,
  localDataCenter: Deno.env.get("CQL_LOCAL_DC") ?? "datacenter1",
  keyspace: `guardyn_auth_test_${suffix}`,
  connectTimeoutMs: 10_000,
};
const replication: Replication = { strategy: "SimpleStrategy", replicationFactor: 1 };

let shared: Promise<CqlStore> | undefined;

/** The migrated test keyspace, opened once per file. */
function sharedStore(): Promise<CqlStore> {
  shared ??= openCqlStore(config, { migrate: true, replication, ports: CQL_PORTS }).catch(
    (error) => {
      throw new Error(
        `these tests need Cassandra or ScyllaDB at ${contactPoints.join(",")} ` +
          `(set CQL_CONTACT_POINTS, or run .ci/cassandra.sh start): ${error.message}`,
        { cause: error },
      );
    },
  );
  return shared;
}

/** A second connection on the same keyspace, as a second service instance would have. */
async function withSession<T>(work: (session: CqlSession) => Promise<T>): Promise<T> {
  await sharedStore();
  const client = await connectCql(config, {}, config.keyspace);
  try {
    return await work(driverSession(client));
  } finally {
    await client.shutdown();
  }
}

/**
 * A session whose statements matching `pattern` are applied, but whose first `losses`
 * answers are replaced by a write timeout: the caller cannot know whether they were applied.
 */
function losingAnswers(session: CqlSession, pattern: RegExp, losses: number): CqlSession {
  let left = losses;
  const timeout = () =>
    new cassandra.errors.ResponseError(cassandra.types.responseErrorCodes.writeTimeout, "lost");
  return {
    async execute(query, params, page) {
      const result = await session.execute(query, params, page);
      if (pattern.test(query) && left > 0) {
        left--;
        throw timeout();
      }
      return result;
    },
    batch: (statements) => session.batch(statements),
  };
}

authStoreSuite("cql", async () => {
  const store = await sharedStore();
  // Tests share the connection; the last test below closes it.
  return { stores: store.auth, close: () => Promise.resolve() };
});

const account = (username: string) => ({
  id: crypto.randomUUID(),
  username,
  passwordHash: "$argon2id$x",
  createdAtMs: Date.now(),
});
const uniqueName = () => `n_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;

Deno.test({
  name: "cql auth: two instances claiming one stock hand out each key once",
  ...NO_SANITIZERS,
  fn: async () => {
    const one = (await sharedStore()).auth;
    await withSession(async (session) => {
      const two = cqlAuthStores(session, config.keyspace);
      const device = { accountId: crypto.randomUUID(), deviceId: "d1" };
      const keys = Array.from({ length: 30 }, (_, i) => ({
        keyId: i + 1,
        publicKey: crypto.getRandomValues(new Uint8Array(33)),
      }));
      await one.prekeys.addOneTime(device, "ec", keys, 100);
      const bundles = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 ? one : two).prekeys.claimBundle(device)),
      );
      const ids = bundles.flatMap((bundle) => bundle.oneTimePrekey?.keyId ?? []);
      assertEquals(ids.length, 30);
      assertEquals(new Set(ids).size, 30);
      assertEquals((await two.prekeys.counts(device)).oneTimePrekeys, 0);
    });
  },
});

Deno.test({
  name: "cql auth: a lost answer to a won transaction is recovered, not taken as a loss",
  ...NO_SANITIZERS,
  fn: async () => {
    await withSession(async (session) => {
      // The username claim is applied, but its answer is lost: the retry must see our own
      // reservation and succeed instead of reporting the name as taken.
      const lossy = cqlAuthStores(losingAnswers(session, /IF NOT EXISTS/, 1), config.keyspace);
      const created = account(uniqueName());
      await lossy.accounts.create(created);
      assertEquals((await lossy.accounts.byUsername(created.username))?.id, created.id);

      // The same for a one-time key claim: the key is handed out, neither lost nor twice.
      const claims = cqlAuthStores(
        losingAnswers(session, /IF claimed_by = null/, 1),
        config.keyspace,
      );
      const device = { accountId: crypto.randomUUID(), deviceId: "d1" };
      await claims.prekeys.addOneTime(
        device,
        "ec",
        [{ keyId: 7, publicKey: new Uint8Array(33) }],
        10,
      );
      assertEquals((await claims.prekeys.claimBundle(device)).oneTimePrekey?.keyId, 7);
      assertEquals((await claims.prekeys.claimBundle(device)).oneTimePrekey, undefined);
    });
  },
});

Deno.test({
  name: "cql auth: an abandoned username reservation is taken over, a fresh one is not",
  ...NO_SANITIZERS,
  fn: async () => {
    const { auth } = await sharedStore();
    await withSession(async (session) => {
      const reserve = (username: string, claimedAt: bigint) =>
        session.execute(
          `INSERT INTO ${config.keyspace}.usernames (username, account_id, claimed_at)
           VALUES (?, ?, ?)`,
          [username, crypto.randomUUID(), claimedAt],
        );
      // A registration that died after reserving the name, long ago: the name is free again.
      const abandoned = uniqueName();
      await reserve(abandoned, 0n);
      const taker = account(abandoned);
      await auth.accounts.create(taker);
      assertEquals((await auth.accounts.byUsername(abandoned))?.id, taker.id);
      // A reservation made just now may still be completing: the name stays taken.
      const fresh = uniqueName();
      await reserve(fresh, BigInt(Date.now()));
      const error = await captureRejection(auth.accounts.create(account(fresh)));
      assert(error instanceof UsernameTakenError, String(error));
      assertEquals(await auth.accounts.byUsername(fresh), undefined);
    });
  },
});

Deno.test({
  name: "cql auth: a one-character prefix search walks the groups in order",
  ...NO_SANITIZERS,
  fn: async () => {
    const { auth } = await sharedStore();
    // "~" sorts after every other first character; the keyspace is fresh for this run.
    const tail = crypto.randomUUID().replaceAll("-", "").slice(0, 10);
    const names = [`~`, `~0${tail}`, `~a${tail}`, `~a${tail}z`, `~z${tail}`, `}${tail}`];
    for (const name of names) await auth.accounts.create(account(name));
    const seen: string[] = [];
    let after = "";
    for (let page = 0; page < 10; page++) {
      const found = await auth.accounts.searchByPrefix("~", after, 2);
      seen.push(...found.map((a) => a.username));
      if (found.length < 2) break;
      after = found.at(-1)!.username;
    }
    assertEquals(seen, names.filter((name) => name.startsWith("~")).sort());
  },
});

Deno.test({
  name: "cql auth: drop the test keyspace",
  ...NO_SANITIZERS,
  fn: async () => {
    const store = await sharedStore();
    await store.close();
    const admin = await connectCql(config);
    try {
      await admin.execute(`DROP KEYSPACE IF EXISTS ${config.keyspace}`);
    } finally {
      await admin.shutdown();
    }
  },
});
