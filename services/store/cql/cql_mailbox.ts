/**
 * MailboxStore on ScyllaDB/Cassandra. Table design and trade-offs: docs/STORAGE.md.
 *
 * Lightweight transactions are used in exactly two places, the two unique decisions:
 * - the idempotency record (INSERT ... IF NOT EXISTS, and the takeover of an abandoned one),
 *   named by its keyed hash (MailboxDelivery.recordKey);
 * - per-device seq allocation: a conditional batch moves the partition's static next_seq and
 *   writes the envelope row in the same Paxos round, so a seq is visible iff its row exists.
 * Everything else is a plain prepared statement at the configured consistency.
 */
import { DeliveryPendingError, IdempotencyConflictError } from "../errors.ts";
import {
  checkDevice,
  deliveryDigest,
  deviceKey,
  envelopeFromRow,
  envelopeIdSeq,
  envelopesOfDelivery,
  newEnvelopeId,
  recordTtlSeconds,
  recordUntilMs,
  ttlSeconds,
  validateAck,
  validateCount,
  validateDelivery,
  validatePurge,
  validateRead,
} from "../mailbox_rules.ts";
import {
  type DeviceRef,
  MAILBOX_COUNT_MAX,
  type MailboxDelivery,
  type MailboxDeliveryResult,
  type MailboxEnvelope,
  type MailboxStore,
} from "../ports.ts";
import { forEachLimited, toBuffer } from "./cql_auth_support.ts";
import type { CqlRow, CqlSession } from "./cql_session.ts";
import { sleep } from "../../platform/time.ts";
import { constantTimeEqual } from "../../../crypto/primitives.ts";

export interface CqlMailboxOptions {
  /** How long a duplicate waits for the first request to finish writing (default 3 s). */
  pendingWaitMs?: number;
  /** A first request claimed longer ago than this without finishing is taken over (15 s). */
  staleAfterMs?: number;
  /** Wall clock for claims; tests move it. */
  clock?: () => number;
}

/** Idempotency records outlive their envelopes by this much. */
const RECORD_TTL_MARGIN_S = 3600;
const CAS_ATTEMPTS_MAX = 64;
const WRITE_CONCURRENCY = 16;
const SEQ_HINTS_MAX = 10_000;
/** Rows per page: bounds memory at 64 x MAILBOX_CONTENT_MAX_BYTES = 16 MiB. */
const READ_PAGE_ROWS = 64;
const COUNT_PAGE_ROWS = 1000;

type Written = Record<string, string>;
type Times = { serverTimestampMs: number; expiresAtMs: number };

/** A copy, so a row never pins the driver's whole response frame in memory. */
const toBytes = (value: unknown) => new Uint8Array(value as Uint8Array);

function statements(ks: string) {
  const device = "account_id = ? AND device_id = ?";
  const delivery = "record_key = ?";
  return {
    nextSeq: `SELECT DISTINCT account_id, device_id, next_seq FROM ${ks}.mailbox WHERE ${device}`,
    casSeq: `UPDATE ${ks}.mailbox SET next_seq = ? WHERE ${device} IF next_seq = ?`,
    insertRow: `INSERT INTO ${ks}.mailbox (account_id, device_id, seq, id, sender_account,
      sender_device, client_message_id, type, content, server_ts, expires_at, record_key,
      record_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?`,
    claim: `INSERT INTO ${ks}.mailbox_delivery_records (record_key, digest, server_ts,
      expires_at, owner_token, claimed_at, items)
      VALUES (?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?`,
    takeover: `UPDATE ${ks}.mailbox_delivery_records USING TTL ? SET owner_token = ?,
      claimed_at = ? WHERE ${delivery} IF owner_token = ?`,
    recordWritten:
      `UPDATE ${ks}.mailbox_delivery_records USING TTL ? SET written[?] = ? WHERE ${delivery}`,
    recordDone:
      `UPDATE ${ks}.mailbox_delivery_records USING TTL ? SET done = true WHERE ${delivery}`,
    readRecord: `SELECT digest, server_ts, expires_at, owner_token, claimed_at, written, done
      FROM ${ks}.mailbox_delivery_records WHERE ${delivery}`,
    recordAcked:
      `UPDATE ${ks}.mailbox_delivery_records USING TTL ? SET acked = acked + ? WHERE ${delivery}`,
    readAcked: `SELECT items, acked FROM ${ks}.mailbox_delivery_records WHERE ${delivery}`,
    settleRecord: `DELETE digest, server_ts, expires_at, owner_token, claimed_at, items, written,
      acked FROM ${ks}.mailbox_delivery_records WHERE ${delivery}`,
    watermark: `SELECT acked_below FROM ${ks}.mailbox_watermarks WHERE ${device}`,
    setWatermark: `UPDATE ${ks}.mailbox_watermarks SET acked_below = ? WHERE ${device}`,
    readRows: `SELECT seq, id, sender_account, sender_device, client_message_id, type, content,
      server_ts, expires_at FROM ${ks}.mailbox WHERE ${device} AND seq >= ?`,
    rowsAt: `SELECT seq, id, record_key, record_until FROM ${ks}.mailbox
      WHERE ${device} AND seq IN ?`,
    deleteAt: `DELETE FROM ${ks}.mailbox WHERE ${device} AND seq IN ?`,
    firstLive: `SELECT seq FROM ${ks}.mailbox WHERE ${device} AND seq >= ? LIMIT 1`,
    expiries: `SELECT expires_at FROM ${ks}.mailbox WHERE ${device} AND seq >= ?`,
    records: `SELECT id, record_key, record_until FROM ${ks}.mailbox
      WHERE ${device} AND seq >= ?`,
    deleteFrom: `DELETE FROM ${ks}.mailbox WHERE ${device} AND seq >= ?`,
  };
}

export class CqlMailbox implements MailboxStore {
  readonly #s: CqlSession;
  readonly #q: ReturnType<typeof statements>;
  readonly #pendingWaitMs: number;
  readonly #staleAfterMs: number;
  readonly #clock: () => number;
  /** Last next_seq seen per device: saves the read before a seq allocation when right. */
  readonly #seqHints = new Map<string, bigint>();
  /** The last queued append per device: appends to one device run one at a time here. */
  readonly #appendTails = new Map<string, Promise<unknown>>();

  constructor(session: CqlSession, keyspace: string, options: CqlMailboxOptions = {}) {
    this.#s = session;
    this.#q = statements(keyspace);
    this.#pendingWaitMs = options.pendingWaitMs ?? 3_000;
    this.#staleAfterMs = options.staleAfterMs ?? 15_000;
    this.#clock = options.clock ?? Date.now;
  }

  async deliver(delivery: MailboxDelivery): Promise<MailboxDeliveryResult> {
    validateDelivery(delivery);
    const digest = deliveryDigest(delivery);
    const recordTtl = recordTtlSeconds(delivery) + RECORD_TTL_MARGIN_S;
    const claim = await this.#s.execute(this.#q.claim, [
      ...recordKey(delivery),
      toBuffer(digest),
      BigInt(delivery.serverTimestampMs),
      BigInt(delivery.expiresAtMs),
      crypto.randomUUID(),
      BigInt(this.#clock()),
      delivery.items.length,
      recordTtl,
    ]);
    if (claim.applied) {
      const envelopes = await this.#complete(delivery, {}, recordTtl);
      return { duplicate: false, envelopes, serverTimestampMs: delivery.serverTimestampMs };
    }
    return await this.#joinFirst(delivery, digest, claim.rows[0]);
  }

  /**
   * Another request holds this idempotency key: return its result once written, wait while it
   * is being written, or take it over (by a second lightweight transaction on the record) when
   * it was abandoned mid-way, finishing only the devices it did not record as written.
   */
  async #joinFirst(
    delivery: MailboxDelivery,
    digest: Uint8Array,
    found: CqlRow | undefined,
  ): Promise<MailboxDeliveryResult> {
    const deadline = this.#clock() + this.#pendingWaitMs;
    let record = found;
    for (let pause = 10;; pause = Math.min(pause * 2, 200)) {
      if (!record) break;
      // Every envelope acknowledged: only the key was kept, so the answer is "already delivered".
      if (record.digest === null) return { duplicate: true, envelopes: [], serverTimestampMs: 0 };
      if (!constantTimeEqual(digest, toBytes(record.digest))) {
        throw new IdempotencyConflictError(
          `clientMessageId '${delivery.clientMessageId}' of this sender device was already ` +
            "used for different envelopes",
        );
      }
      const times: Times = {
        serverTimestampMs: Number(record.server_ts),
        expiresAtMs: Number(record.expires_at),
      };
      const first = { ...delivery, ...times };
      const written = (record.written ?? {}) as Written;
      if (record.done === true) {
        const envelopes = envelopesOf(first, written);
        return { duplicate: true, envelopes, serverTimestampMs: times.serverTimestampMs };
      }
      if (this.#clock() - Number(record.claimed_at) >= this.#staleAfterMs) {
        const recordTtl = recordTtlSeconds({ ...delivery, ...times }) + RECORD_TTL_MARGIN_S;
        const took = await this.#s.execute(this.#q.takeover, [
          recordTtl,
          crypto.randomUUID(),
          BigInt(this.#clock()),
          ...recordKey(delivery),
          record.owner_token,
        ]);
        if (took.applied) {
          const envelopes = await this.#complete(first, written, recordTtl);
          return { duplicate: false, envelopes, serverTimestampMs: times.serverTimestampMs };
        }
      }
      if (this.#clock() >= deadline) break;
      await sleep(pause);
      record = (await this.#s.execute(this.#q.readRecord, recordKey(delivery))).rows[0];
    }
    throw new DeliveryPendingError(
      `a delivery with clientMessageId '${delivery.clientMessageId}' from this sender device ` +
        "is still being written; retry shortly",
    );
  }

  /** Writes the items not yet in `written`, recording each, then marks the delivery done. */
  async #complete(delivery: MailboxDelivery, written: Written, recordTtl: number) {
    const done = { ...written };
    const todo = delivery.items.map((_, i) => i).filter((i) => !(String(i) in done));
    const ttl = ttlSeconds(delivery);
    await forEachLimited(todo, WRITE_CONCURRENCY, async (i) => {
      const id = await this.#append(delivery, i, ttl);
      await this.#s.execute(this.#q.recordWritten, [
        recordTtl,
        String(i),
        id,
        ...recordKey(delivery),
      ]);
      done[String(i)] = id;
    });
    await this.#s.execute(this.#q.recordDone, [recordTtl, ...recordKey(delivery)]);
    return envelopesOf(delivery, done);
  }

  /**
   * Appends to one device's mailbox run one after another on this instance. Concurrent
   * conditional batches on one partition make Paxos rounds collide: with 64 sends in flight to
   * one device, each round had one winner and 63 retries, and CQL write timeouts followed
   * (64 sends took 9-15 s on one Cassandra node). Queued, each round wins at the first try with
   * the seq hint; only other instances can still contend.
   */
  #append(delivery: MailboxDelivery, index: number, ttl: number): Promise<string> {
    const key = deviceKey(delivery.items[index]!.recipient);
    const previous = this.#appendTails.get(key) ?? Promise.resolve();
    const appended = previous.then(() => this.#appendNow(delivery, index, ttl));
    const tail = appended.catch(() => {});
    this.#appendTails.set(key, tail);
    void tail.then(() => {
      if (this.#appendTails.get(key) === tail) this.#appendTails.delete(key);
    });
    return appended;
  }

  /** Allocates the recipient's next seq and writes the row in one conditional batch. */
  async #appendNow(delivery: MailboxDelivery, index: number, ttl: number): Promise<string> {
    const item = delivery.items[index]!;
    const { accountId, deviceId } = item.recipient;
    const hintKey = deviceKey(item.recipient);
    let current = this.#seqHints.get(hintKey) ?? await this.#readNextSeq(item.recipient);
    for (let attempt = 1; attempt <= CAS_ATTEMPTS_MAX; attempt++) {
      const seq = current ?? 1n;
      const id = newEnvelopeId(Number(seq));
      const result = await this.#s.batch([
        { query: this.#q.casSeq, params: [seq + 1n, accountId, deviceId, current] },
        {
          query: this.#q.insertRow,
          params: [
            accountId,
            deviceId,
            seq,
            id,
            delivery.sender.accountId,
            delivery.sender.deviceId,
            delivery.clientMessageId,
            item.type,
            toBuffer(item.content),
            BigInt(delivery.serverTimestampMs),
            BigInt(delivery.expiresAtMs),
            toBuffer(delivery.recordKey),
            BigInt(recordUntilMs(delivery)),
            ttl,
          ],
        },
      ]);
      if (result.applied) {
        this.#hint(hintKey, seq + 1n);
        return id;
      }
      // The losing transaction reports the current counter: retry from there.
      current = (result.rows[0]?.next_seq as bigint | null | undefined) ?? null;
      if (attempt > 2) await sleep(Math.random() * 4 * attempt);
    }
    throw new DeliveryPendingError(
      `could not allocate a mailbox seq after ${CAS_ATTEMPTS_MAX} attempts (contention); retry`,
    );
  }

  async #readNextSeq(owner: DeviceRef): Promise<bigint | null> {
    const result = await this.#s.execute(this.#q.nextSeq, [owner.accountId, owner.deviceId]);
    return (result.rows[0]?.next_seq as bigint | null | undefined) ?? null;
  }

  #hint(key: string, nextSeq: bigint): void {
    this.#seqHints.delete(key);
    this.#seqHints.set(key, nextSeq);
    if (this.#seqHints.size > SEQ_HINTS_MAX) {
      this.#seqHints.delete(this.#seqHints.keys().next().value!);
    }
  }

  async read(owner: DeviceRef, afterSeq: number, limit: number, nowMs: number) {
    validateRead(owner, afterSeq, limit, nowMs);
    const watermark = await this.#watermark(owner);
    const start = BigInt(afterSeq) + 1n > watermark ? BigInt(afterSeq) + 1n : watermark;
    const envelopes: MailboxEnvelope[] = [];
    let pageState: string | undefined;
    do {
      const page = await this.#s.execute(
        this.#q.readRows,
        [owner.accountId, owner.deviceId, start],
        { fetchSize: Math.min(limit, READ_PAGE_ROWS), pageState },
      );
      for (const row of page.rows) {
        // TTL runs on the cluster's clock; nowMs decides at the edge.
        if (Number(row.expires_at) <= nowMs) continue;
        envelopes.push(envelopeFromRow(owner, row, toBytes(row.content)));
        if (envelopes.length === limit) return envelopes;
      }
      pageState = page.pageState;
    } while (pageState);
    return envelopes;
  }

  async ack(owner: DeviceRef, ids: string[]): Promise<number> {
    validateAck(owner, ids);
    const wanted = new Map<bigint, Set<string>>();
    for (const id of ids) {
      const seq = envelopeIdSeq(id);
      if (seq === undefined) continue;
      const key = BigInt(seq);
      wanted.set(key, (wanted.get(key) ?? new Set()).add(id));
    }
    if (wanted.size === 0) return 0;
    const device = [owner.accountId, owner.deviceId];
    const found = await this.#s.execute(this.#q.rowsAt, [...device, [...wanted.keys()]]);
    const rows = found.rows.filter((row) => wanted.get(row.seq as bigint)?.has(String(row.id)));
    const matched = rows.map((row) => row.seq as bigint);
    if (matched.length === 0) return 0;
    await this.#s.execute(this.#q.deleteAt, [...device, matched]);
    await this.#advanceWatermark(owner, matched.reduce((a, b) => (a > b ? a : b)));
    await this.#settle(rows);
    return matched.length;
  }

  /**
   * Counts deleted envelopes as acknowledged on their deliveries' records; the record whose
   * every item is acknowledged keeps only its key. Each record's reader reads after its own
   * write, so of two acks finishing a record at once, at least the later one sees it complete.
   */
  async #settle(rows: CqlRow[]): Promise<void> {
    const byRecord = new Map<string, { key: Buffer; until: number; ids: string[] }>();
    for (const row of rows) {
      // Envelopes written before schema version 3 name no record.
      if (row.record_key == null || row.record_until == null) continue;
      const key = row.record_key as Buffer;
      const hex = key.toString("hex");
      const entry = byRecord.get(hex) ?? { key, until: Number(row.record_until), ids: [] };
      entry.ids.push(String(row.id));
      byRecord.set(hex, entry);
    }
    const now = this.#clock();
    const live = [...byRecord.values()].filter((entry) => entry.until > now);
    await forEachLimited(live, WRITE_CONCURRENCY, async ({ key, until, ids }) => {
      // The record's own remaining lifetime: a plain write must not outlive it.
      const ttl = Math.max(1, Math.ceil((until - now) / 1000));
      await this.#s.execute(this.#q.recordAcked, [ttl, ids, key]);
      const state = (await this.#s.execute(this.#q.readAcked, [key])).rows[0];
      if (!state || state.items == null) return;
      const acked = (state.acked ?? []) as unknown[];
      if (acked.length >= Number(state.items)) {
        await this.#s.execute(this.#q.settleRecord, [key]);
      }
    });
  }

  /**
   * Moves the watermark up to the first live row. Safe because a seq and its row appear in
   * one Paxos round: no row can later show up below a live one. Scans only the tombstones
   * made since the last move.
   */
  async #advanceWatermark(owner: DeviceRef, maxAcked: bigint): Promise<void> {
    const current = await this.#watermark(owner);
    const device = [owner.accountId, owner.deviceId];
    const first = await this.#s.execute(this.#q.firstLive, [...device, current]);
    const next = first.rows[0] ? (first.rows[0].seq as bigint) : maxAcked + 1n;
    if (next > current) await this.#s.execute(this.#q.setWatermark, [next, ...device]);
  }

  async #watermark(owner: DeviceRef): Promise<bigint> {
    const result = await this.#s.execute(this.#q.watermark, [owner.accountId, owner.deviceId]);
    return (result.rows[0]?.acked_below as bigint | null | undefined) ?? 0n;
  }

  async count(owner: DeviceRef, nowMs: number): Promise<number> {
    validateCount(owner, nowMs);
    return await this.#countRows(owner, (expiresAt) => expiresAt > nowMs, MAILBOX_COUNT_MAX);
  }

  async #countRows(owner: DeviceRef, counts: (expiresAt: number) => boolean, max: number) {
    const from = await this.#watermark(owner);
    let n = 0;
    let pageState: string | undefined;
    do {
      const page = await this.#s.execute(
        this.#q.expiries,
        [owner.accountId, owner.deviceId, from],
        { fetchSize: COUNT_PAGE_ROWS, pageState },
      );
      for (const row of page.rows) {
        if (counts(Number(row.expires_at)) && ++n >= max) return n;
      }
      pageState = page.pageState;
    } while (pageState);
    return n;
  }

  /**
   * Expired rows vanish by their TTL on the cluster's clock, with no scan and no delete, so
   * there is nothing to purge here; read and count already skip rows past nowMs.
   */
  purgeExpired(nowMs: number, limit: number): Promise<number> {
    return Promise.try(() => {
      validatePurge(nowMs, limit);
      return 0;
    });
  }

  async purgeDevice(owner: DeviceRef): Promise<number> {
    checkDevice(owner, "owner");
    const rows = await this.#recordsOf(owner);
    // One range tombstone for the whole mailbox; the static next_seq survives, so seqs are
    // never reused, and the watermark stays valid.
    await this.#s.execute(this.#q.deleteFrom, [owner.accountId, owner.deviceId, 0n]);
    await this.#settle(rows);
    return rows.length;
  }

  /** Every row of a mailbox, as (id, record_key, record_until) only. */
  async #recordsOf(owner: DeviceRef): Promise<CqlRow[]> {
    const from = await this.#watermark(owner);
    const rows: CqlRow[] = [];
    let pageState: string | undefined;
    do {
      const page = await this.#s.execute(
        this.#q.records,
        [owner.accountId, owner.deviceId, from],
        { fetchSize: COUNT_PAGE_ROWS, pageState },
      );
      rows.push(...page.rows);
      pageState = page.pageState;
    } while (pageState);
    return rows;
  }
}

function recordKey(delivery: MailboxDelivery): Buffer[] {
  return [toBuffer(delivery.recordKey)];
}

/** The envelope ids of a delivery's items, in item order, from the record's `written` map. */
function envelopesOf(delivery: MailboxDelivery, written: Written): MailboxEnvelope[] {
  return envelopesOfDelivery(delivery, delivery.items.map((_, i) => written[String(i)]!));
}
