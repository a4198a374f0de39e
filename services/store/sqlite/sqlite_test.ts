import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { assert, assertEquals, captureRejection } from "../../../tests/assert.ts";
import { memoryLogger } from "../../platform/log.ts";
import { registerMailboxSuite } from "../conformance/mailbox_suite.ts";
import { registerGroupSuite } from "../conformance/group_suite.ts";
import { registerMediaSuite } from "../conformance/media_suite.ts";
import { registerPushSuite } from "../conformance/push_suite.ts";
import { registerPresenceSuite } from "../conformance/presence_suite.ts";
import { SchemaMismatchError } from "../errors.ts";
import { openStore } from "../../runtime/open_store.ts";
import { SQLITE_MIGRATIONS } from "./migrations.ts";
import { openSqliteStore } from "./sqlite_store.ts";
import { SQLITE_PORTS } from "../../runtime/store_ports.ts";
import { keyed } from "../conformance/record_keys.ts";

const LATEST = SQLITE_MIGRATIONS.at(-1)!.version;

// One temporary folder per test file; each test gets its own database file in it.
const dir = await Deno.makeTempDir({ prefix: "guardyn-sqlite-" });
let files = 0;
const freshPath = () => join(dir, `nested-${++files}`, "guardyn.db");

registerMailboxSuite({
  name: "sqlite",
  open: () => openSqliteStore(freshPath(), { ports: SQLITE_PORTS }),
  expiresByTtl: false,
});

registerMediaSuite({
  name: "sqlite",
  open: () => openSqliteStore(freshPath(), { ports: SQLITE_PORTS }),
});

registerPushSuite({
  name: "sqlite",
  open: () => openSqliteStore(freshPath(), { ports: SQLITE_PORTS }),
});

registerPresenceSuite({
  name: "sqlite",
  open: () => openSqliteStore(freshPath(), { ports: SQLITE_PORTS }),
});

registerGroupSuite({
  name: "sqlite",
  open: () => openSqliteStore(freshPath(), { ports: SQLITE_PORTS }),
});

Deno.test("sqlite open: creates the folder, migrates and logs the real backend", async () => {
  const log = memoryLogger();
  const path = freshPath();
  const store = await openStore({ backend: "sqlite", path }, log);
  try {
    assertEquals(store.info, { backend: "sqlite", location: path, schemaVersion: LATEST });
    const line = log.lines.find((l) => l.msg === "store opened");
    assertEquals(line?.backend, "sqlite");
    assertEquals(line?.location, path);
    assertEquals(line?.schemaVersion, LATEST);
    assertEquals(line?.migrationsApplied, SQLITE_MIGRATIONS.map((m) => m.version));
  } finally {
    await store.close();
  }
  // Reopening finds the schema current and applies nothing.
  const again = await openSqliteStore(path, { migrate: false, ports: SQLITE_PORTS });
  assertEquals(again.applied, []);
  await again.close();
});

Deno.test("sqlite open: uses WAL, NORMAL sync, a busy timeout and foreign keys", async () => {
  const store = await openSqliteStore(freshPath(), { ports: SQLITE_PORTS });
  try {
    assertEquals(store.pragmas(), {
      journal_mode: "wal",
      synchronous: 1,
      busy_timeout: 5000,
      foreign_keys: 1,
    });
  } finally {
    await store.close();
  }
});

Deno.test("sqlite open: a newer schema is refused with both versions named", async () => {
  const path = freshPath();
  await (await openSqliteStore(path, { ports: SQLITE_PORTS })).close();
  const db = new DatabaseSync(path);
  db.prepare("INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)")
    .run(LATEST + 1, "from-the-future", Date.now());
  db.close();
  const error = await captureRejection(openStore({ backend: "sqlite", path }, memoryLogger()));
  assert(error instanceof SchemaMismatchError, String(error));
  assert(error.message.includes(`schema version ${LATEST + 1}`), error.message);
  assert(error.message.includes(`version ${LATEST} this binary knows`), error.message);
});

Deno.test("sqlite open: an older schema is refused when migrate is off", async () => {
  const path = freshPath();
  await Deno.mkdir(join(path, ".."), { recursive: true });
  const db = new DatabaseSync(path);
  db.exec(
    "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at_ms INT)",
  );
  db.close();
  const error = await captureRejection(
    openSqliteStore(path, { migrate: false, ports: SQLITE_PORTS }),
  );
  assert(error instanceof SchemaMismatchError, String(error));
  assert(error.message.includes("run `deno task migrate`"), error.message);
  // With migrate on (the embedded default) the same file is brought up to date.
  const store = await openSqliteStore(path, { ports: SQLITE_PORTS });
  assertEquals(store.info.schemaVersion, LATEST);
  await store.close();
});

Deno.test("sqlite open: a file that is not a Guardyn store is refused", async () => {
  const path = freshPath();
  await Deno.mkdir(join(path, ".."), { recursive: true });
  const db = new DatabaseSync(path);
  db.exec("CREATE TABLE something_else (x INTEGER)");
  db.close();
  const error = await captureRejection(openSqliteStore(path, { ports: SQLITE_PORTS }));
  assert(error instanceof SchemaMismatchError, String(error));
  assert(error.message.includes("not a Guardyn store"), error.message);
});

Deno.test("sqlite open: a foreign migration history is refused", async () => {
  const path = freshPath();
  await (await openSqliteStore(path, { ports: SQLITE_PORTS })).close();
  const db = new DatabaseSync(path);
  db.prepare("UPDATE schema_migrations SET name = ? WHERE version = 1").run("someone-else");
  db.close();
  const error = await captureRejection(openSqliteStore(path, { ports: SQLITE_PORTS }));
  assert(error instanceof SchemaMismatchError, String(error));
  assert(error.message.includes("unknown schema history"), error.message);
});

Deno.test("sqlite: two stores on one file share one mailbox and one seq counter", async () => {
  const path = freshPath();
  const [a, b] = [
    await openSqliteStore(path, { ports: SQLITE_PORTS }),
    await openSqliteStore(path, { ports: SQLITE_PORTS }),
  ];
  try {
    const owner = { accountId: "bob", deviceId: "d1" };
    const sender = { accountId: "alice", deviceId: "d1" };
    const send = (store: typeof a, cmid: string) =>
      store.mailbox.deliver(keyed({
        sender,
        clientMessageId: cmid,
        serverTimestampMs: Date.now(),
        expiresAtMs: Date.now() + 60_000,
        items: [{ recipient: owner, type: 1, content: new Uint8Array([1]) }],
      }));
    const seqs = [];
    for (let i = 0; i < 4; i++) {
      seqs.push((await send(i % 2 ? a : b, `m${i}`)).envelopes[0]!.seq);
    }
    assertEquals(seqs, [1, 2, 3, 4]);
    assertEquals((await send(a, "m1")).duplicate, true);
    assertEquals(await b.mailbox.count(owner, Date.now()), 4);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("sqlite: cleanup of the temporary folder", async () => {
  await Deno.remove(dir, { recursive: true });
});

// Audit finding 8, in part: the idempotency record (sender device, client message id, envelope
// ids) was kept as long as the envelopes; now it is purged when its window ends.
Deno.test("sqlite deliver: the idempotency record is purged when its window ends", async () => {
  const path = freshPath();
  const store = await openSqliteStore(path, { ports: SQLITE_PORTS });
  try {
    const now = Date.now();
    const recipient = { accountId: "bob", deviceId: "laptop" };
    await store.mailbox.deliver(keyed({
      sender: { accountId: "alice", deviceId: "phone" },
      clientMessageId: "m1",
      serverTimestampMs: now,
      expiresAtMs: now + 30 * 86_400_000,
      recordUntilMs: now + 60_000,
      items: [{ recipient, type: 1, content: new Uint8Array([1]) }],
    }));
    assertEquals(readRecords(path).length, 1);
    await store.mailbox.purgeExpired(now + 61_000, 100);
    assertEquals(readRecords(path).length, 0);
    // The envelope itself waits for its recipient as before.
    assertEquals(await store.mailbox.count(recipient, now + 61_000), 1);
  } finally {
    await store.close();
  }
});

/** Every idempotency record, read from the file itself, with every column. */
function readRecords(path: string): Record<string, unknown>[] {
  const db = new DatabaseSync(path);
  try {
    return db.prepare("SELECT * FROM mailbox_delivery_records").all() as Record<string, unknown>[];
  } finally {
    db.close();
  }
}

// Audit finding 8: the record named the sender device and client message id in clear and kept
// the envelope ids after every envelope was acknowledged. Now it holds a keyed hash of them and,
// at the last acknowledgement (or purge of a recipient device), nothing else.
Deno.test("sqlite deliver: the record names nobody and keeps only its key once acknowledged", async () => {
  const path = freshPath();
  const store = await openSqliteStore(path, { ports: SQLITE_PORTS });
  try {
    const now = Date.now();
    const sender = { accountId: "alice-account", deviceId: "alice-phone" };
    const bob = { accountId: "bob", deviceId: "laptop" };
    const eve = { accountId: "eve", deviceId: "tablet" };
    const delivery = keyed({
      sender,
      clientMessageId: "client-message-7",
      serverTimestampMs: now,
      expiresAtMs: now + 86_400_000,
      recordUntilMs: now + 3_600_000,
      items: [bob, eve].map((recipient) => ({ recipient, type: 1, content: new Uint8Array([1]) })),
    });
    const sent = await store.mailbox.deliver(delivery);
    const [record] = readRecords(path);
    assertEquals(Object.keys(record!).sort(), [
      "digest",
      "envelopes",
      "expires_at",
      "pending",
      "record_expires_at",
      "record_key",
      "server_ts",
    ]);
    for (const clear of ["alice-account", "alice-phone", "client-message-7"]) {
      assert(!JSON.stringify(record).includes(clear), `record holds ${clear}`);
    }
    assertEquals(record!.pending, 2);

    await store.mailbox.ack(bob, [sent.envelopes[0]!.id]);
    assertEquals(readRecords(path)[0]!.pending, 1);
    assert(readRecords(path)[0]!.envelopes !== null, "kept while eve's envelope waits");
    await store.mailbox.purgeDevice(eve);
    const [settled] = readRecords(path);
    assertEquals({ ...settled }, {
      record_key: delivery.recordKey,
      digest: null,
      server_ts: null,
      expires_at: null,
      envelopes: null,
      pending: 0,
      record_expires_at: now + 3_600_000,
    });
    const retry = await store.mailbox.deliver({ ...delivery, serverTimestampMs: now + 1 });
    assertEquals(retry, { duplicate: true, envelopes: [], serverTimestampMs: 0 });
  } finally {
    await store.close();
  }
});
