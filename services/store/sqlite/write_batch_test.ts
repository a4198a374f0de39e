import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals, assertRejects } from "../../../tests/assert.ts";
import { WriteBatcher } from "./write_batch.ts";

function openTable(): DatabaseSync {
  const db = new DatabaseSync(":memory:");
  db.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)");
  return db;
}

function rows(db: DatabaseSync): Record<string, number> {
  const all = db.prepare("SELECT k, v FROM t ORDER BY k").all() as { k: string; v: number }[];
  return Object.fromEntries(all.map((r) => [r.k, Number(r.v)]));
}

Deno.test("write batch: work queued in one turn commits in one transaction", async () => {
  const db = openTable();
  const batcher = new WriteBatcher(db);
  const insert = db.prepare("INSERT INTO t (k, v) VALUES (?, ?)");
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) => batcher.run(() => insert.run(`k${i}`, i).changes)),
  );
  assertEquals(results.map(Number), Array(50).fill(1));
  assertEquals(batcher.committed, { transactions: 1, pieces: 50 });
  assertEquals(Object.keys(rows(db)).length, 50);
  db.close();
});

Deno.test("write batch: a failing piece is undone and rejects alone; the others commit", async () => {
  const db = openTable();
  const batcher = new WriteBatcher(db);
  const insert = db.prepare("INSERT INTO t (k, v) VALUES (?, ?)");
  const first = batcher.run(() => insert.run("a", 1));
  const failing = batcher.run(() => {
    insert.run("b", 2); // written, then undone with its piece
    insert.run("a", 3); // primary key conflict
  });
  const last = batcher.run(() => insert.run("c", 4));
  await first;
  await assertRejects(() => failing, /UNIQUE/);
  await last;
  assertEquals(rows(db), { a: 1, c: 4 });
  // The batch rolled back, then each piece ran in a transaction of its own.
  assertEquals(batcher.committed, { transactions: 2, pieces: 2 });
  db.close();
});

Deno.test("write batch: a flood is split into bounded transactions, in order", async () => {
  const db = openTable();
  const batcher = new WriteBatcher(db, 10);
  const insert = db.prepare("INSERT INTO t (k, v) VALUES (?, ?)");
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 25 }, (_, i) =>
      batcher.run(() => {
        order.push(i);
        insert.run(`k${String(i).padStart(2, "0")}`, i);
      })),
  );
  assertEquals(order, Array.from({ length: 25 }, (_, i) => i));
  assertEquals(batcher.committed, { transactions: 3, pieces: 25 });
  db.close();
});

Deno.test("write batch: flushAll commits queued work at once (before a close)", async () => {
  const db = openTable();
  const batcher = new WriteBatcher(db);
  const insert = db.prepare("INSERT INTO t (k, v) VALUES (?, ?)");
  const pending = batcher.run(() => insert.run("x", 1));
  batcher.flushAll();
  assertEquals(rows(db), { x: 1 });
  db.close();
  await pending;
  // The immediate scheduled before the flush finds nothing to do on the closed connection.
  await new Promise((resolve) => setTimeout(resolve, 5));
});

Deno.test("write batch: when the transaction cannot start, every piece rejects and nothing runs", async () => {
  const db = openTable();
  const batcher = new WriteBatcher(db);
  db.exec("BEGIN"); // someone else's open transaction: BEGIN IMMEDIATE fails at once
  let ran = false;
  await assertRejects(() => batcher.run(() => (ran = true)), /transaction/);
  assert(!ran);
  db.exec("ROLLBACK");
  db.close();
});
