/**
 * MailboxStore on one SQLite file. node:sqlite is synchronous, so a transaction never yields
 * to the event loop: within a process deliveries are serialised, and BEGIN IMMEDIATE plus
 * busy_timeout serialise writers across processes sharing the file. Deliveries and
 * acknowledgements queued in one event-loop turn share one transaction (write_batch.ts).
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { IdempotencyConflictError } from "../errors.ts";
import {
  checkDevice,
  deliveryDigest,
  envelopeFromRow,
  envelopeIdSeq,
  envelopesOfDelivery,
  newEnvelopeId,
  recordUntilMs,
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
import type { Row } from "./sqlite_tx.ts";
import { WriteBatcher } from "./write_batch.ts";
import { constantTimeEqual } from "../../../crypto/primitives.ts";

/** What the idempotency record keeps per envelope; content is checked via the digest. */
interface StoredItem {
  seq: number;
  id: string;
}

export class SqliteMailbox implements MailboxStore {
  readonly #writes: WriteBatcher;
  readonly #findDelivery: StatementSync;
  readonly #nextSeq: StatementSync;
  readonly #insertEnvelope: StatementSync;
  readonly #insertDelivery: StatementSync;
  readonly #readRows: StatementSync;
  readonly #ackOne: StatementSync;
  readonly #settleOne: StatementSync;
  readonly #countRows: StatementSync;
  readonly #deleteExpired: StatementSync;
  readonly #deleteExpiredDeliveries: StatementSync;
  readonly #deleteDevice: StatementSync;

  constructor(db: DatabaseSync) {
    this.#writes = new WriteBatcher(db);
    // Prepared once: db.exec would parse these on every call.
    this.#findDelivery = db.prepare(
      `SELECT digest, server_ts, expires_at, envelopes FROM mailbox_delivery_records
       WHERE record_key = ?`,
    );
    // One statement allocates the next seq, creating the device's counter on first use.
    this.#nextSeq = db.prepare(
      `INSERT INTO mailbox_heads (account_id, device_id, next_seq) VALUES (?, ?, 2)
       ON CONFLICT (account_id, device_id) DO UPDATE SET next_seq = next_seq + 1
       RETURNING next_seq - 1 AS seq`,
    );
    this.#insertEnvelope = db.prepare(
      `INSERT INTO mailbox (account_id, device_id, seq, id, sender_account, sender_device,
         client_message_id, type, content, server_ts, expires_at, record_key)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#insertDelivery = db.prepare(
      `INSERT INTO mailbox_delivery_records (record_key, digest, server_ts, expires_at,
         envelopes, pending, record_expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#readRows = db.prepare(
      `SELECT seq, id, sender_account, sender_device, client_message_id, type, content,
         server_ts, expires_at
       FROM mailbox WHERE account_id = ? AND device_id = ? AND seq > ? AND expires_at > ?
       ORDER BY seq LIMIT ?`,
    );
    this.#ackOne = db.prepare(
      `DELETE FROM mailbox WHERE account_id = ? AND device_id = ? AND seq = ? AND id = ?
       RETURNING record_key`,
    );
    // SET expressions read the old row: the last pending envelope clears all but the key.
    this.#settleOne = db.prepare(
      `UPDATE mailbox_delivery_records SET pending = pending - 1,
         digest = iif(pending <= 1, NULL, digest),
         server_ts = iif(pending <= 1, NULL, server_ts),
         expires_at = iif(pending <= 1, NULL, expires_at),
         envelopes = iif(pending <= 1, NULL, envelopes)
       WHERE record_key = ? AND pending > 0`,
    );
    this.#countRows = db.prepare(
      `SELECT count(*) AS n FROM (SELECT 1 FROM mailbox
       WHERE account_id = ? AND device_id = ? AND expires_at > ? LIMIT ?)`,
    );
    this.#deleteExpired = db.prepare(
      `DELETE FROM mailbox WHERE rowid IN
       (SELECT rowid FROM mailbox WHERE expires_at <= ? LIMIT ?)`,
    );
    this.#deleteExpiredDeliveries = db.prepare(
      `DELETE FROM mailbox_delivery_records WHERE record_key IN
       (SELECT record_key FROM mailbox_delivery_records WHERE record_expires_at <= ? LIMIT ?)`,
    );
    this.#deleteDevice = db.prepare(
      "DELETE FROM mailbox WHERE account_id = ? AND device_id = ? RETURNING record_key",
    );
  }

  /** Commits queued deliveries and acknowledgements now (before the connection closes). */
  flushPendingWrites(): void {
    this.#writes.flushAll();
  }

  // The public methods run the synchronous work inside Promise.try, so bad input rejects.
  deliver(delivery: MailboxDelivery): Promise<MailboxDeliveryResult> {
    return Promise.try(() => this.#deliver(delivery));
  }

  read(owner: DeviceRef, afterSeq: number, limit: number, nowMs: number) {
    return Promise.try(() => this.#read(owner, afterSeq, limit, nowMs));
  }

  ack(owner: DeviceRef, ids: string[]): Promise<number> {
    return Promise.try(() => this.#ack(owner, ids));
  }

  count(owner: DeviceRef, nowMs: number): Promise<number> {
    return Promise.try(() => this.#count(owner, nowMs));
  }

  purgeExpired(nowMs: number, limit: number): Promise<number> {
    return Promise.try(() => this.#purgeExpired(nowMs, limit));
  }

  purgeDevice(owner: DeviceRef): Promise<number> {
    return Promise.try(() => this.#purgeDevice(owner));
  }

  #deliver(delivery: MailboxDelivery): Promise<MailboxDeliveryResult> {
    validateDelivery(delivery);
    const digest = deliveryDigest(delivery);
    const { sender, clientMessageId, recordKey } = delivery;
    const written = this.#writes.run((): MailboxDeliveryResult | IdempotencyConflictError => {
      const existing = this.#findDelivery.get(recordKey) as Row | undefined;
      // A conflict is returned, not thrown, inside the group transaction (write_batch.ts).
      if (existing) return duplicateResult(delivery, digest, existing);
      const stored: StoredItem[] = [];
      for (const item of delivery.items) {
        const { accountId, deviceId } = item.recipient;
        const seq = Number((this.#nextSeq.get(accountId, deviceId) as Row).seq);
        const id = newEnvelopeId(seq);
        this.#insertEnvelope.run(
          accountId,
          deviceId,
          seq,
          id,
          sender.accountId,
          sender.deviceId,
          clientMessageId,
          item.type,
          item.content,
          delivery.serverTimestampMs,
          delivery.expiresAtMs,
          recordKey,
        );
        stored.push({ seq, id });
      }
      this.#insertDelivery.run(
        recordKey,
        digest,
        delivery.serverTimestampMs,
        delivery.expiresAtMs,
        JSON.stringify(stored),
        stored.length,
        recordUntilMs(delivery),
      );
      return {
        duplicate: false,
        envelopes: envelopesOfDelivery(delivery, stored.map((item) => item.id)),
        serverTimestampMs: delivery.serverTimestampMs,
      };
    });
    return written.then((result) => {
      if (result instanceof IdempotencyConflictError) throw result;
      return result;
    });
  }

  #read(owner: DeviceRef, afterSeq: number, limit: number, nowMs: number): MailboxEnvelope[] {
    validateRead(owner, afterSeq, limit, nowMs);
    const rows = this.#readRows.all(
      owner.accountId,
      owner.deviceId,
      afterSeq,
      nowMs,
      limit,
    ) as Row[];
    return rows.map((row) => envelopeFromRow(owner, row, row.content as Uint8Array));
  }

  #ack(owner: DeviceRef, ids: string[]): Promise<number> | number {
    validateAck(owner, ids);
    const targets = ids.flatMap((id) => {
      const seq = envelopeIdSeq(id);
      return seq === undefined ? [] : [{ id, seq }];
    });
    if (targets.length === 0) return 0;
    return this.#writes.run(() => {
      let deleted = 0;
      for (const { id, seq } of targets) {
        const row = this.#ackOne.get(owner.accountId, owner.deviceId, seq, id) as Row | undefined;
        if (!row) continue;
        deleted++;
        this.#settle(row);
      }
      return deleted;
    });
  }

  #count(owner: DeviceRef, nowMs: number): number {
    validateCount(owner, nowMs);
    const row = this.#countRows.get(
      owner.accountId,
      owner.deviceId,
      nowMs,
      MAILBOX_COUNT_MAX,
    ) as Row;
    return Number(row.n);
  }

  #purgeExpired(nowMs: number, limit: number): number {
    validatePurge(nowMs, limit);
    const purged = Number(this.#deleteExpired.run(nowMs, limit).changes);
    // A record ends with its window (never after its envelopes); a later retry is a new message.
    this.#deleteExpiredDeliveries.run(nowMs, limit);
    return purged;
  }

  #purgeDevice(owner: DeviceRef): Promise<number> {
    checkDevice(owner, "owner");
    // The seq counter in mailbox_heads stays, so a reused device id never sees a seq twice.
    return this.#writes.run(() => {
      const rows = this.#deleteDevice.all(owner.accountId, owner.deviceId) as Row[];
      for (const row of rows) this.#settle(row);
      return rows.length;
    });
  }

  /** One envelope of a record's delivery is gone: count it, clear the record at the last. */
  #settle(row: Row): void {
    // Envelopes written before schema version 4 name no record.
    if (row.record_key instanceof Uint8Array) this.#settleOne.run(row.record_key);
  }
}

function duplicateResult(
  delivery: MailboxDelivery,
  digest: Uint8Array,
  existing: Row,
): MailboxDeliveryResult | IdempotencyConflictError {
  if (existing.digest !== null && !constantTimeEqual(digest, existing.digest as Uint8Array)) {
    return new IdempotencyConflictError(
      `clientMessageId '${delivery.clientMessageId}' of this sender device was already used ` +
        "for different envelopes",
    );
  }
  // Every envelope acknowledged: only the key was kept, so the answer is "already delivered".
  if (existing.digest === null) return { duplicate: true, envelopes: [], serverTimestampMs: 0 };
  const stored = JSON.parse(String(existing.envelopes)) as StoredItem[];
  const first = {
    serverTimestampMs: Number(existing.server_ts),
    expiresAtMs: Number(existing.expires_at),
  };
  return {
    duplicate: true,
    envelopes: envelopesOfDelivery(delivery, stored.map((item) => item.id), first),
    serverTimestampMs: first.serverTimestampMs,
  };
}
