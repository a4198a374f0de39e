import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { assert, assertEquals, captureRejection } from "../../../tests/assert.ts";
import { memoryLogger } from "../../platform/log.ts";
import { registerMailboxSuite } from "../conformance/mailbox_suite.ts";
import { SchemaMismatchError } from "../errors.ts";
import { openStore } from "../../runtime/open_store.ts";
import { SQLITE_MIGRATIONS } from "./migrations.ts";
import { openSqliteStore } from "./sqlite_store.ts";
import { SQLITE_PORTS } from "../../runtime/store_ports.ts";

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
      store.mailbox.deliver({
        sender,
        clientMessageId: cmid,
        serverTimestampMs: Date.now(),
        expiresAtMs: Date.now() + 60_000,
        items: [{ recipient: owner, type: 1, content: new Uint8Array([1]) }],
      });
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
    await store.mailbox.deliver({
      sender: { accountId: "alice", deviceId: "phone" },
      clientMessageId: "m1",
      serverTimestampMs: now,
      expiresAtMs: now + 30 * 86_400_000,
      recordUntilMs: now + 60_000,
      items: [{ recipient, type: 1, content: new Uint8Array([1]) }],
    });
    const records = () => {
      const db = new DatabaseSync(path);
      try {
        return (db.prepare("SELECT count(*) AS n FROM mailbox_deliveries").get() as { n: number })
          .n;
      } finally {
        db.close();
      }
    };
    assertEquals(records(), 1);
    await store.mailbox.purgeExpired(now + 61_000, 100);
    assertEquals(records(), 0);
    // The envelope itself waits for its recipient as before.
    assertEquals(await store.mailbox.count(recipient, now + 61_000), 1);
  } finally {
    await store.close();
  }
});
