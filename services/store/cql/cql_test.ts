import { Buffer } from "node:buffer";
/**
 * The CQL adapter against a real node on CQL_CONTACT_POINTS (default 127.0.0.1:9042, e.g.
 * `.ci/cassandra.sh start`). One fresh keyspace per run (schema changes are slow), migrated
 * first and dropped last. Without a reachable node every test fails with a clear message.
 */
import { assert, assertEquals, captureRejection } from "../../../tests/assert.ts";
import { memoryLogger } from "../../platform/log.ts";
import { registerMailboxSuite } from "../conformance/mailbox_suite.ts";
import { registerGroupSuite } from "../conformance/group_suite.ts";
import { registerMediaSuite } from "../conformance/media_suite.ts";
import { registerPushSuite } from "../conformance/push_suite.ts";
import { registerPresenceSuite } from "../conformance/presence_suite.ts";
import { DeliveryPendingError, SchemaMismatchError, StoreUnavailableError } from "../errors.ts";
import { openStore } from "../../runtime/open_store.ts";
import type { MailboxDelivery } from "../ports.ts";
import { CqlMailbox } from "./cql_mailbox.ts";
import { loadCqlMigrations, migrateCql } from "./cql_migrate.ts";
import type { Replication } from "./cql_options.ts";
import { connectCql, type CqlConfig, type CqlSession, driverSession } from "./cql_session.ts";
import { type CqlStore, openCqlStore } from "./cql_store.ts";
import { NO_SANITIZERS } from "../../../tests/support/wait.ts";
import { CQL_PORTS } from "../../runtime/store_ports.ts";
import { keyed } from "../conformance/record_keys.ts";

const contactPoints = (Deno.env.get("CQL_CONTACT_POINTS") ?? "127.0.0.1:9042").split(",");
const suffix = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
const config: CqlConfig = {
  backend: "cql",
  contactPoints,
  localDataCenter: Deno.env.get("CQL_LOCAL_DC") ?? "datacenter1",
  keyspace: `guardyn_test_${suffix}`,
  connectTimeoutMs: 10_000,
};
const replication: Replication = { strategy: "SimpleStrategy", replicationFactor: 1 };
const LATEST = (await loadCqlMigrations()).at(-1)!.version;

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

registerMailboxSuite({
  name: "cql",
  // Tests share the connection; the last test below closes it.
  open: async () => ({ ...(await sharedStore()), close: () => Promise.resolve() }),
  expiresByTtl: true,
  sanitize: false,
});

registerMediaSuite({
  name: "cql",
  open: async () => ({ ...(await sharedStore()), close: () => Promise.resolve() }),
  sanitize: false,
});

registerPushSuite({
  name: "cql",
  open: async () => ({ ...(await sharedStore()), close: () => Promise.resolve() }),
  sanitize: false,
});

registerPresenceSuite({
  name: "cql",
  open: async () => ({ ...(await sharedStore()), close: () => Promise.resolve() }),
  sanitize: false,
});

registerGroupSuite({
  name: "cql",
  open: async () => ({ ...(await sharedStore()), close: () => Promise.resolve() }),
  sanitize: false,
});

Deno.test("cql open: an unreachable cluster fails fast with contact points and timeout", async () => {
  const log = memoryLogger();
  const started = Date.now();
  const error = await captureRejection(
    openStore({ ...config, contactPoints: ["127.0.0.1:1"], connectTimeoutMs: 3000 }, log),
  );
  assert(error instanceof StoreUnavailableError, String(error));
  assert(error.message.includes("127.0.0.1:1"), error.message);
  assert(error.message.includes("3000 ms"), error.message);
  assert(Date.now() - started < 3500, `took ${Date.now() - started} ms`);
  assertEquals(log.lines.filter((l) => l.msg === "store opened"), []);
});

Deno.test({
  name: "cql open: logs the real backend and never the credentials",
  ...NO_SANITIZERS,
  fn: async () => {
    await sharedStore();
    const log = memoryLogger();
    const withCredentials = { ...config, username: "guardyn", password: "hunter2-secret" };
    const store = await openStore(withCredentials, log);
    try {
      assertEquals(store.info, {
        backend: "cql",
        location: `${contactPoints.join(",")}/${config.keyspace}`,
        schemaVersion: LATEST,
      });
      const line = log.lines.find((l) => l.msg === "store opened");
      assertEquals([line?.backend, line?.schemaVersion], ["cql", LATEST]);
      assert(!JSON.stringify(log.lines).includes("hunter2"), "password reached the log");
    } finally {
      await store.close();
    }
  },
});

Deno.test({
  name: "cql open: a missing or unmigrated keyspace is refused, pointing to migrate",
  ...NO_SANITIZERS,
  fn: async () => {
    await sharedStore();
    const missing = await captureRejection(
      openStore({ ...config, keyspace: `guardyn_absent_${suffix}` }, memoryLogger()),
    );
    assert(missing instanceof SchemaMismatchError, String(missing));
    assert(missing.message.includes("does not exist"), missing.message);
    assert(missing.message.includes("deno task migrate"), missing.message);

    const empty = `guardyn_empty_${suffix}`;
    const admin = await connectCql(config);
    try {
      await admin.execute(
        `CREATE KEYSPACE ${empty} WITH replication = ` +
          "{'class': 'SimpleStrategy', 'replication_factor': 1}",
      );
      const error = await captureRejection(
        openStore({ ...config, keyspace: empty }, memoryLogger()),
      );
      assert(error instanceof SchemaMismatchError, String(error));
      assert(error.message.includes("is not migrated (schema version 0"), error.message);
      assert(error.message.includes("run `deno task migrate`"), error.message);
    } finally {
      await admin.execute(`DROP KEYSPACE IF EXISTS ${empty}`);
      await admin.shutdown();
    }
  },
});

Deno.test({
  name: "cql open: a newer schema is refused with both versions named",
  ...NO_SANITIZERS,
  fn: async () => {
    await sharedStore();
    const client = await connectCql(config, {}, config.keyspace);
    const future = LATEST + 1;
    try {
      await client.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
        [future, "from_the_future", new Date()],
        { prepare: true },
      );
      const error = await captureRejection(openStore(config, memoryLogger()));
      assert(error instanceof SchemaMismatchError, String(error));
      assert(error.message.includes(`schema version ${future}, newer`), error.message);
      assert(error.message.includes(`version ${LATEST} this binary knows`), error.message);
    } finally {
      await client.execute("DELETE FROM schema_migrations WHERE version = ?", [future], {
        prepare: true,
      });
      await client.shutdown();
    }
  },
});

Deno.test({
  name: "cql migrate: rerunning is a no-op, and a new keyspace needs a replication setting",
  ...NO_SANITIZERS,
  fn: async () => {
    await sharedStore();
    const lines: string[] = [];
    const again = await migrateCql(config, { replication }, (line) => lines.push(line));
    assertEquals(again, { createdKeyspace: false, applied: [], version: LATEST });
    assertEquals(lines, [`keyspace ${config.keyspace} already at schema version ${LATEST}`]);
    // A migrate interrupted after its statements but before its ledger row reruns them all:
    // the column additions (ScyllaDB has no ADD IF NOT EXISTS) are skipped, not failed.
    const client = await connectCql(config);
    try {
      await client.execute(
        `DELETE FROM ${config.keyspace}.schema_migrations WHERE version = ?`,
        [LATEST],
        { prepare: true },
      );
    } finally {
      await client.shutdown();
    }
    const rerun = await migrateCql(config, { replication }, () => {});
    assertEquals(rerun, { createdKeyspace: false, applied: [LATEST], version: LATEST });
    const error = await captureRejection(
      migrateCql({ ...config, keyspace: `guardyn_absent_${suffix}` }, {}),
    );
    assert(String(error).includes("CQL_REPLICATION"), String(error));
  },
});

/** A session whose seq-allocating batches fail from the `failAt`-th one on: a crash mid-way. */
function failingSession(inner: CqlSession, failAt: number): CqlSession {
  let batches = 0;
  return {
    execute: (query, params, page) => inner.execute(query, params, page),
    batch: (statements) =>
      ++batches >= failAt
        ? Promise.reject(new Error("injected: node lost mid-delivery"))
        : inner.batch(statements),
  };
}

function threeDeviceDelivery(): MailboxDelivery {
  const now = Date.now();
  return keyed({
    sender: { accountId: `alice-${crypto.randomUUID()}`, deviceId: "phone" },
    clientMessageId: crypto.randomUUID(),
    serverTimestampMs: now,
    expiresAtMs: now + 3600_000,
    items: ["a", "b", "c"].map((deviceId, i) => ({
      recipient: { accountId: `bob-${crypto.randomUUID()}`, deviceId },
      type: 1,
      content: new Uint8Array([i + 1]),
    })),
  });
}

// Audit finding 8, in part: the idempotency record lived as long as the envelopes (here an
// hour, 30 days by default); now it lives for its window plus the recovery margin.
Deno.test({
  name: "cql deliver: the idempotency record lives for its window, not the envelopes' lifetime",
  ...NO_SANITIZERS,
  fn: async () => {
    const store = await sharedStore();
    const base = threeDeviceDelivery();
    const delivery = {
      ...base,
      expiresAtMs: base.serverTimestampMs + 30 * 86_400_000,
      recordUntilMs: base.serverTimestampMs + 120_000,
    };
    await store.mailbox.deliver(delivery);
    const client = await connectCql(config);
    try {
      const row = (await client.execute(
        `SELECT TTL(digest) AS ttl FROM ${config.keyspace}.mailbox_delivery_records
         WHERE record_key = ?`,
        [Buffer.from(delivery.recordKey)],
        { prepare: true },
      )).rows[0];
      const ttl = Number(row?.ttl);
      assert(ttl > 0 && ttl <= 120 + 3600, `record TTL ${ttl} s`);
    } finally {
      await client.shutdown();
    }
  },
});

// Audit finding 8: the record named the sender device and client message id in clear and kept
// the envelope ids after every envelope was acknowledged. Now it is named by a keyed hash and,
// once the last envelope is acknowledged, keeps nothing but that key and its TTL.
Deno.test({
  name: "cql deliver: the record names nobody and keeps only its key once acknowledged",
  ...NO_SANITIZERS,
  fn: async () => {
    const store = await sharedStore();
    const delivery = { ...threeDeviceDelivery(), clientMessageId: `cmid-${crypto.randomUUID()}` };
    const sent = await store.mailbox.deliver(delivery);
    const client = await connectCql(config);
    try {
      const record = async () =>
        (await client.execute(
          `SELECT * FROM ${config.keyspace}.mailbox_delivery_records WHERE record_key = ?`,
          [Buffer.from(delivery.recordKey)],
          { prepare: true },
        )).rows[0];
      const columns = (await client.execute(
        `SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?`,
        [config.keyspace, "mailbox_delivery_records"],
        { prepare: true },
      )).rows.map((row) => String(row.column_name)).sort();
      assertEquals(columns, [
        "acked",
        "claimed_at",
        "digest",
        "done",
        "expires_at",
        "items",
        "owner_token",
        "record_key",
        "server_ts",
        "written",
      ]);
      const before = await record();
      assertEquals(Object.keys(before?.written ?? {}).length, 3);
      const dump = JSON.stringify(before, (_, v) => typeof v === "bigint" ? String(v) : v);
      for (const clear of [delivery.sender.accountId, delivery.clientMessageId]) {
        assert(!dump.includes(clear), `record holds ${clear}`);
      }
      const [a, b, c] = delivery.items.map((item) => item.recipient);
      await store.mailbox.ack(a!, [sent.envelopes[0]!.id]);
      await store.mailbox.ack(b!, [sent.envelopes[1]!.id]);
      assert((await record())?.digest !== null, "kept while one envelope waits");
      await store.mailbox.purgeDevice(c!);
      const after = await record();
      assertEquals(
        Object.entries(after ?? {}).filter(([, value]) => value !== null).map(([key]) => key)
          .sort(),
        ["done", "record_key"],
      );
      const retry = await store.mailbox.deliver({ ...delivery, serverTimestampMs: Date.now() });
      assertEquals(retry, { duplicate: true, envelopes: [], serverTimestampMs: 0 });
    } finally {
      await client.shutdown();
    }
  },
});

Deno.test({
  name: "cql deliver: a retry of an abandoned delivery waits, then completes the missing devices",
  ...NO_SANITIZERS,
  fn: async () => {
    const store = await sharedStore();
    const client = await connectCql(config);
    try {
      const session = driverSession(client);
      const request = threeDeviceDelivery();
      // Every batch after the first fails: exactly one of the three devices gets its envelope.
      const crashing = new CqlMailbox(failingSession(session, 2), config.keyspace);
      const crash = await captureRejection(crashing.deliver(request));
      assert(String(crash).includes("injected"), String(crash));
      const counts = async () =>
        await Promise.all(
          request.items.map((item) => store.mailbox.count(item.recipient, Date.now())),
        );
      assertEquals((await counts()).reduce((a, b) => a + b), 1);

      // While the first attempt is recent, a retry waits and then asks to retry later.
      const patient = new CqlMailbox(session, config.keyspace, { pendingWaitMs: 50 });
      const pending = await captureRejection(patient.deliver(request));
      assert(pending instanceof DeliveryPendingError, String(pending));

      // Once it is stale, the retry takes it over and writes only what is missing.
      const rescuer = new CqlMailbox(session, config.keyspace, { staleAfterMs: 0 });
      const rescued = await rescuer.deliver(request);
      assertEquals(rescued.duplicate, false);
      assertEquals(await counts(), [1, 1, 1]);
      const again = await store.mailbox.deliver(request);
      assertEquals(again.duplicate, true);
      assertEquals(again.envelopes.map((e) => e.id), rescued.envelopes.map((e) => e.id));
      for (const [i, item] of request.items.entries()) {
        const [read] = await store.mailbox.read(item.recipient, 0, 10, Date.now());
        assertEquals(read?.id, rescued.envelopes[i]!.id);
      }
    } finally {
      await client.shutdown();
    }
  },
});

Deno.test({
  name: "cql: drop the test keyspace",
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
