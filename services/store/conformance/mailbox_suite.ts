/**
 * The MailboxStore conformance suite: every adapter registers it with a factory for a store and
 * must pass it unchanged. Each test uses fresh random account ids, so adapters may share one
 * database between tests (CQL creates one keyspace per test file, not per test).
 */
import { assert, assertEquals, assertNotEquals, captureRejection } from "../../../tests/assert.ts";
import { IdempotencyConflictError, StoreInputError } from "../errors.ts";
import {
  type DeviceRef,
  MAILBOX_ACK_MAX,
  MAILBOX_CONTENT_MAX_BYTES,
  MAILBOX_DELIVERY_MAX_ITEMS,
  MAILBOX_ID_MAX_CHARS,
  MAILBOX_READ_MAX,
  MAILBOX_TTL_MAX_MS,
  type MailboxDelivery,
  type MailboxEnvelope,
} from "../ports.ts";
import { keyed } from "./record_keys.ts";
import { type StoreSuiteOptions, storeSuiteTest } from "./store_suite_kit.ts";

export interface MailboxSuiteOptions extends StoreSuiteOptions {
  /**
   * Expired rows disappear by wall-clock TTL (CQL) rather than by purgeExpired (SQLite): the
   * purge test then waits for real expiry and checks that the rows are physically gone.
   */
  expiresByTtl: boolean;
}

const HOUR_MS = 3600_000;
const bytes = (...values: number[]) => new Uint8Array(values);

function newAccount(label: string): string {
  return `${label}-${crypto.randomUUID()}`;
}

function device(accountId: string, deviceId = "d1"): DeviceRef {
  return { accountId, deviceId };
}

function delivery(
  sender: DeviceRef,
  recipients: DeviceRef[],
  options: { cmid?: string; ts?: number; ttlMs?: number; size?: number } = {},
): MailboxDelivery {
  const ts = options.ts ?? Date.now();
  return keyed({
    sender,
    clientMessageId: options.cmid ?? crypto.randomUUID(),
    serverTimestampMs: ts,
    expiresAtMs: ts + (options.ttlMs ?? HOUR_MS),
    items: recipients.map((recipient, i) => ({
      recipient,
      type: 1 + i,
      content: options.size
        ? new Uint8Array(options.size).fill(i + 1)
        : crypto.getRandomValues(new Uint8Array(32 + i)),
    })),
  });
}

function strip(envelopes: MailboxEnvelope[]) {
  return envelopes.map((e) => ({ ...e, content: Array.from(e.content) }));
}

/** Awaits a call that must reject with `type` and a message containing `fragment`. */
async function assertRejects(
  call: () => Promise<unknown>,
  type: new (...args: never[]) => Error,
  fragment = "",
): Promise<void> {
  const error = await captureRejection(Promise.resolve().then(call));
  assert(error instanceof type, `expected ${type.name}, got ${String(error)}`);
  assert(error.message.includes(fragment), `"${error.message}" lacks "${fragment}"`);
}

function assertIncreasing(seqs: number[]): void {
  for (let i = 1; i < seqs.length; i++) {
    assert(seqs[i]! > seqs[i - 1]!, `seq ${seqs[i]} after ${seqs[i - 1]} is not increasing`);
  }
}

export function registerMailboxSuite(options: MailboxSuiteOptions): void {
  const test = storeSuiteTest(options, "mailbox");

  test("info names the backend and ping answers", async (store) => {
    assertEquals(store.info.backend, options.name);
    assert(store.info.schemaVersion > 0, "schema version is positive");
    await store.ping();
  });

  test("delivered envelopes are read back whole, in seq order", async (store) => {
    const alice = device(newAccount("alice"));
    const bob = device(newAccount("bob"));
    const first = await store.mailbox.deliver(delivery(alice, [bob]));
    const second = await store.mailbox.deliver(delivery(alice, [bob]));
    assertEquals(first.duplicate, false);
    const read = await store.mailbox.read(bob, 0, 10, Date.now());
    assertEquals(strip(read), strip([...first.envelopes, ...second.envelopes]));
    assertIncreasing(read.map((e) => e.seq));
    const envelope = read[0]!;
    assertEquals(envelope.recipient, bob);
    assertEquals(envelope.sender, alice);
    assertEquals(envelope.serverTimestampMs, first.serverTimestampMs);
    assertEquals(await store.mailbox.count(bob, Date.now()), 2);
  });

  test("read after a cursor returns only later envelopes", async (store) => {
    const alice = device(newAccount("alice"));
    const bob = device(newAccount("bob"));
    for (let i = 0; i < 5; i++) await store.mailbox.deliver(delivery(alice, [bob]));
    const all = await store.mailbox.read(bob, 0, 10, Date.now());
    const cursor = all[1]!.seq;
    const later = await store.mailbox.read(bob, cursor, 10, Date.now());
    assertEquals(later.map((e) => e.id), all.slice(2).map((e) => e.id));
  });

  test("concurrent deliveries to one device get distinct increasing seqs", async (store) => {
    const bob = device(newAccount("bob"));
    const senders = Array.from({ length: 12 }, (_, i) => device(newAccount(`s${i}`)));
    const results = await Promise.all(
      senders.map((sender) => store.mailbox.deliver(delivery(sender, [bob]))),
    );
    const read = await store.mailbox.read(bob, 0, 50, Date.now());
    assertEquals(read.length, senders.length);
    assertIncreasing(read.map((e) => e.seq));
    const delivered = results.map((r) => r.envelopes[0]!).sort((a, b) => a.seq - b.seq);
    assertEquals(read.map((e) => [e.seq, e.id]), delivered.map((e) => [e.seq, e.id]));
  });

  test("seqs keep increasing after ack and purgeDevice (never reused)", async (store) => {
    const alice = device(newAccount("alice"));
    const bob = device(newAccount("bob"));
    const a = await store.mailbox.deliver(delivery(alice, [bob]));
    await store.mailbox.ack(bob, a.envelopes.map((e) => e.id));
    const b = await store.mailbox.deliver(delivery(alice, [bob]));
    await store.mailbox.purgeDevice(bob);
    const c = await store.mailbox.deliver(delivery(alice, [bob]));
    assertIncreasing([a, b, c].map((r) => r.envelopes[0]!.seq));
    assertEquals((await store.mailbox.read(bob, 0, 10, Date.now())).map((e) => e.id), [
      c.envelopes[0]!.id,
    ]);
  });

  test("a multi-device delivery puts one envelope in each mailbox", async (store) => {
    const alice = device(newAccount("alice"), "phone");
    const aliceLaptop = device(alice.accountId, "laptop");
    const bobs = [device(newAccount("bob"), "a"), device(newAccount("bob"), "b")];
    const result = await store.mailbox.deliver(delivery(alice, [...bobs, aliceLaptop]));
    assertEquals(result.envelopes.map((e) => e.recipient), [...bobs, aliceLaptop]);
    assertEquals(new Set(result.envelopes.map((e) => e.id)).size, 3);
    for (const [i, owner] of [...bobs, aliceLaptop].entries()) {
      const read = await store.mailbox.read(owner, 0, 10, Date.now());
      assertEquals(strip(read), strip([result.envelopes[i]!]));
    }
  });

  test("a retry with the same clientMessageId returns the first result", async (store) => {
    const alice = device(newAccount("alice"));
    const bobs = [device(newAccount("bob")), device(newAccount("carol"))];
    const first = delivery(alice, bobs, { ts: Date.now() - 1000 });
    const original = await store.mailbox.deliver(first);
    const retry = await store.mailbox.deliver({ ...first, serverTimestampMs: Date.now() });
    assertEquals(retry.duplicate, true);
    assertEquals(retry.serverTimestampMs, original.serverTimestampMs);
    assertEquals(strip(retry.envelopes), strip(original.envelopes));
    for (const bob of bobs) assertEquals(await store.mailbox.count(bob, Date.now()), 1);
  });

  test("concurrent duplicates are written once", async (store) => {
    const alice = device(newAccount("alice"));
    const bobs = [device(newAccount("bob")), device(newAccount("carol"))];
    const request = delivery(alice, bobs);
    const results = await Promise.all(
      Array.from({ length: 6 }, () => store.mailbox.deliver({ ...request })),
    );
    assertEquals(results.filter((r) => !r.duplicate).length, 1);
    for (const r of results) assertEquals(strip(r.envelopes), strip(results[0]!.envelopes));
    for (const bob of bobs) assertEquals(await store.mailbox.count(bob, Date.now()), 1);
  });

  test("a clientMessageId reused for other envelopes is refused", async (store) => {
    const alice = device(newAccount("alice"));
    const bob = device(newAccount("bob"));
    const first = delivery(alice, [bob], { cmid: "m-1" });
    await store.mailbox.deliver(first);
    const changed = delivery(alice, [bob], { cmid: "m-1" });
    await assertRejects(() => store.mailbox.deliver(changed), IdempotencyConflictError, "m-1");
    assertEquals(await store.mailbox.count(bob, Date.now()), 1);
  });

  test("the idempotency key is scoped to the sender device", async (store) => {
    const account = newAccount("alice");
    const bob = device(newAccount("bob"));
    const one = await store.mailbox.deliver(delivery(device(account, "a"), [bob], { cmid: "x" }));
    const two = await store.mailbox.deliver(delivery(device(account, "b"), [bob], { cmid: "x" }));
    assertEquals([one.duplicate, two.duplicate], [false, false]);
    assertEquals(await store.mailbox.count(bob, Date.now()), 2);
  });

  test("a delivery with one bad item writes nothing at all", async (store) => {
    const alice = device(newAccount("alice"));
    const bob = device(newAccount("bob"));
    const carol = device(newAccount("carol"));
    const request = delivery(alice, [bob, carol], { cmid: "all-or-nothing" });
    const bad = {
      ...request,
      items: [
        request.items[0]!,
        { ...request.items[1]!, content: new Uint8Array(MAILBOX_CONTENT_MAX_BYTES + 1) },
      ],
    };
    await assertRejects(() => store.mailbox.deliver(bad), StoreInputError, "items[1].content");
    assertEquals(await store.mailbox.count(bob, Date.now()), 0);
    assertEquals(await store.mailbox.count(carol, Date.now()), 0);
    // Nothing was recorded either: the corrected request is a first delivery.
    const ok = await store.mailbox.deliver(request);
    assertEquals(ok.duplicate, false);
    assertEquals(await store.mailbox.count(carol, Date.now()), 1);
  });

  test("ack deletes only the owner's envelopes", async (store) => {
    const alice = device(newAccount("alice"));
    const bob = device(newAccount("bob"));
    const eve = device(newAccount("eve"));
    const sent = await store.mailbox.deliver(delivery(alice, [bob, eve]));
    const [toBob, toEve] = sent.envelopes;
    assertEquals(await store.mailbox.ack(eve, [toBob!.id, toEve!.id]), 1);
    assertEquals((await store.mailbox.read(bob, 0, 10, Date.now())).map((e) => e.id), [
      toBob!.id,
    ]);
    assertEquals(await store.mailbox.read(eve, 0, 10, Date.now()), []);
  });

  // Audit finding 8: the record kept the envelope ids and times after the last ack.
  test("a retry after every envelope was acknowledged is a duplicate with nothing kept", async (store) => {
    const alice = device(newAccount("alice"));
    const bob = device(newAccount("bob"));
    const eve = device(newAccount("eve"));
    const first = delivery(alice, [bob, eve]);
    const sent = await store.mailbox.deliver(first);
    const [toBob, toEve] = sent.envelopes;
    await store.mailbox.ack(bob, [toBob!.id]);
    const halfway = await store.mailbox.deliver({ ...first, serverTimestampMs: Date.now() + 5 });
    assertEquals(halfway.duplicate, true);
    assertEquals(halfway.envelopes.map((e) => e.id), [toBob!.id, toEve!.id]);
    assertEquals(halfway.serverTimestampMs, sent.serverTimestampMs);
    await store.mailbox.ack(eve, [toEve!.id]);
    const after = await store.mailbox.deliver({ ...first, serverTimestampMs: Date.now() + 10 });
    assertEquals(after, { duplicate: true, envelopes: [], serverTimestampMs: 0 });
    assertEquals(await store.mailbox.count(bob, Date.now()), 0);
    assertEquals(await store.mailbox.count(eve, Date.now()), 0);
  });

  test("the record key, not the clear sender and id, decides what is a retry", async (store) => {
    const alice = device(newAccount("alice"));
    const bob = device(newAccount("bob"));
    const first = delivery(alice, [bob], { cmid: "same" });
    await store.mailbox.deliver(first);
    const otherKey = { ...first, recordKey: new Uint8Array(32).fill(1) };
    assertEquals((await store.mailbox.deliver(otherKey)).duplicate, false);
    await assertRejects(
      () => store.mailbox.deliver({ ...first, recordKey: new Uint8Array(31) }),
      StoreInputError,
      "recordKey",
    );
  });

  test("ack ignores unknown, malformed and repeated ids", async (store) => {
    const alice = device(newAccount("alice"));
    const bob = device(newAccount("bob"));
    const sent = await store.mailbox.deliver(delivery(alice, [bob]));
    const id = sent.envelopes[0]!.id;
    const forged = `${sent.envelopes[0]!.seq}.AAAAAAAAAAAAAAAAAAAAAA`;
    assertEquals(await store.mailbox.ack(bob, ["nonsense", forged, ""]), 0);
    assertEquals(await store.mailbox.count(bob, Date.now()), 1);
    assertEquals(await store.mailbox.ack(bob, [id, id]), 1);
    assertEquals(await store.mailbox.ack(bob, [id]), 0);
    assertEquals(await store.mailbox.ack(bob, []), 0);
  });

  test("unacknowledged envelopes are read again", async (store) => {
    const alice = device(newAccount("alice"));
    const bob = device(newAccount("bob"));
    for (let i = 0; i < 4; i++) await store.mailbox.deliver(delivery(alice, [bob]));
    const all = await store.mailbox.read(bob, 0, 10, Date.now());
    await store.mailbox.ack(bob, [all[1]!.id, all[2]!.id]);
    const again = await store.mailbox.read(bob, 0, 10, Date.now());
    assertEquals(again.map((e) => e.id), [all[0]!.id, all[3]!.id]);
    // Acknowledging the rest in order leaves an empty mailbox that still takes new mail.
    await store.mailbox.ack(bob, [all[0]!.id, all[3]!.id]);
    assertEquals(await store.mailbox.read(bob, 0, 10, Date.now()), []);
    const next = await store.mailbox.deliver(delivery(alice, [bob]));
    assertEquals((await store.mailbox.read(bob, 0, 10, Date.now())).map((e) => e.id), [
      next.envelopes[0]!.id,
    ]);
  });

  test("read and count ignore expired envelopes", async (store) => {
    const alice = device(newAccount("alice"));
    const bob = device(newAccount("bob"));
    const t0 = Date.now();
    const short = await store.mailbox.deliver(delivery(alice, [bob], { ts: t0, ttlMs: 60_000 }));
    const long = await store.mailbox.deliver(delivery(alice, [bob], { ts: t0, ttlMs: HOUR_MS }));
    assertEquals(await store.mailbox.count(bob, t0), 2);
    const expiry = short.envelopes[0]!.expiresAtMs;
    assertEquals(await store.mailbox.count(bob, expiry), 1, "expired at expiresAtMs exactly");
    const read = await store.mailbox.read(bob, 0, 10, expiry + 1);
    assertEquals(read.map((e) => e.id), [long.envelopes[0]!.id]);
  });

  test("purgeExpired removes expired envelopes for good", async (store) => {
    const alice = device(newAccount("alice"));
    const bob = device(newAccount("bob"));
    const t0 = Date.now();
    for (let i = 0; i < 3; i++) {
      await store.mailbox.deliver(delivery(alice, [bob], { ts: t0, ttlMs: 1000 }));
    }
    const keep = await store.mailbox.deliver(delivery(alice, [bob], { ts: t0, ttlMs: HOUR_MS }));
    let now = t0 + 1000;
    if (options.expiresByTtl) {
      // TTLs count whole seconds from the write; wait until they have surely run out.
      await new Promise((resolve) => setTimeout(resolve, 2100));
      now = Date.now();
      await store.mailbox.purgeExpired(now, 100);
    } else {
      assertEquals(await store.mailbox.purgeExpired(now, 2), 2, "limit respected");
      assertEquals(await store.mailbox.purgeExpired(now, 100), 1);
      assertEquals(await store.mailbox.purgeExpired(now, 100), 0);
    }
    // Read as of t0, when nothing had expired yet: the purged rows are physically gone.
    const left = await store.mailbox.read(bob, 0, 10, t0);
    assertEquals(left.map((e) => e.id), [keep.envelopes[0]!.id]);
    assertEquals(await store.mailbox.count(bob, t0), 1);
  });

  test("reads are bounded by limit and refuse limits above the maximum", async (store) => {
    const alice = device(newAccount("alice"));
    const bob = device(newAccount("bob"));
    for (let i = 0; i < 5; i++) await store.mailbox.deliver(delivery(alice, [bob]));
    const two = await store.mailbox.read(bob, 0, 2, Date.now());
    assertEquals(two.length, 2);
    const rest = await store.mailbox.read(bob, two[1]!.seq, 10, Date.now());
    assertEquals(rest.length, 3);
    await assertRejects(
      () => store.mailbox.read(bob, 0, MAILBOX_READ_MAX + 1, Date.now()),
      StoreInputError,
      `1..${MAILBOX_READ_MAX}`,
    );
    await assertRejects(() => store.mailbox.read(bob, 0, 0, Date.now()), StoreInputError);
    await assertRejects(() => store.mailbox.read(bob, -1, 10, Date.now()), StoreInputError);
  });

  test("purgeDevice empties one device's mailbox only", async (store) => {
    const alice = device(newAccount("alice"));
    const bobPhone = device(newAccount("bob"), "phone");
    const bobLaptop = device(bobPhone.accountId, "laptop");
    for (let i = 0; i < 3; i++) await store.mailbox.deliver(delivery(alice, [bobPhone, bobLaptop]));
    assertEquals(await store.mailbox.purgeDevice(bobPhone), 3);
    assertEquals(await store.mailbox.count(bobPhone, Date.now()), 0);
    assertEquals(await store.mailbox.count(bobLaptop, Date.now()), 3);
    assertEquals(await store.mailbox.purgeDevice(bobPhone), 0);
  });

  test("a device never reads another device's envelopes", async (store) => {
    const alice = device(newAccount("alice"));
    const bob = device(newAccount("bob"), "d1");
    const bobOther = device(bob.accountId, "d2");
    const sameDeviceIdOtherAccount = device(newAccount("mallory"), "d1");
    await store.mailbox.deliver(delivery(alice, [bob]));
    for (const other of [bobOther, sameDeviceIdOtherAccount]) {
      assertEquals(await store.mailbox.read(other, 0, MAILBOX_READ_MAX, Date.now()), []);
      assertEquals(await store.mailbox.count(other, Date.now()), 0);
    }
    const mine = await store.mailbox.read(bob, 0, 10, Date.now());
    assertEquals(mine.length, 1);
    assertEquals(mine[0]!.recipient, bob);
  });

  test("the largest allowed envelope round-trips byte for byte", async (store) => {
    const alice = device(newAccount("alice"));
    const bob = device(newAccount("bob"));
    const request = delivery(alice, [bob], { size: MAILBOX_CONTENT_MAX_BYTES });
    request.items[0]!.content.forEach((_, i, all) => all[i] = (i * 131 + 7) % 251);
    await store.mailbox.deliver(request);
    const [read] = await store.mailbox.read(bob, 0, 1, Date.now());
    assertEquals(read?.content, request.items[0]!.content);
  });

  test("bad input is refused with a clear error", async (store) => {
    const alice = device(newAccount("alice"));
    const bob = device(newAccount("bob"));
    const ok = delivery(alice, [bob]);
    const cases: [string, MailboxDelivery][] = [
      ["at least one item", { ...ok, items: [] }],
      ["clientMessageId", { ...ok, clientMessageId: "" }],
      [`${MAILBOX_ID_MAX_CHARS} limit`, { ...ok, clientMessageId: "x".repeat(200) }],
      ["sender.deviceId", { ...ok, sender: { accountId: "a", deviceId: "" } }],
      ["control characters", { ...ok, sender: { accountId: "a\n", deviceId: "d" } }],
      ["after serverTimestampMs", { ...ok, expiresAtMs: ok.serverTimestampMs }],
      ["lifetime", { ...ok, expiresAtMs: ok.serverTimestampMs + MAILBOX_TTL_MAX_MS + 1 }],
      ["appears twice", { ...ok, items: [ok.items[0]!, ok.items[0]!] }],
      ["non-empty bytes", { ...ok, items: [{ ...ok.items[0]!, content: bytes() }] }],
      ["type", { ...ok, items: [{ ...ok.items[0]!, type: -1 }] }],
      [
        `${MAILBOX_DELIVERY_MAX_ITEMS} limit`,
        delivery(
          alice,
          Array.from({ length: MAILBOX_DELIVERY_MAX_ITEMS + 1 }, (_, i) => device("b", `${i}`)),
        ),
      ],
    ];
    for (const [message, bad] of cases) {
      await assertRejects(() => store.mailbox.deliver(bad), StoreInputError, message);
    }
    const tooMany = Array.from({ length: MAILBOX_ACK_MAX + 1 }, () => "1.x");
    await assertRejects(() => store.mailbox.ack(bob, tooMany), StoreInputError, "ack of");
    await assertRejects(
      () => store.mailbox.read({ accountId: "", deviceId: "d" }, 0, 1, 0),
      StoreInputError,
      "owner.accountId",
    );
    await assertRejects(() => store.mailbox.purgeExpired(Date.now(), 0), StoreInputError);
    assertEquals(await store.mailbox.count(bob, Date.now()), 0);
  });

  test("ids are unique across mailboxes and deliveries", async (store) => {
    const alice = device(newAccount("alice"));
    const recipients = Array.from({ length: 5 }, (_, i) => device(newAccount(`r${i}`)));
    const a = await store.mailbox.deliver(delivery(alice, recipients));
    const b = await store.mailbox.deliver(delivery(alice, recipients));
    const ids = [...a.envelopes, ...b.envelopes].map((e) => e.id);
    assertEquals(new Set(ids).size, ids.length);
    assertNotEquals(a.envelopes[0]!.id, b.envelopes[0]!.id);
  });
}
