/**
 * What the demo shows of the server: the mailbox rows of the dev server's SQLite file, opened
 * read-only. It proves the point of the system: the server holds addresses, sizes and times,
 * and ciphertext it cannot read.
 */

import { DatabaseSync } from "node:sqlite";
import { toHex } from "../bytes.ts";

export interface StoredRow {
  recipient: { accountId: string; deviceId: string };
  sender: { accountId: string; deviceId: string };
  /** 1 prekey message, 2 ratchet message (guardyn.v1.EnvelopeType). */
  type: number;
  content: Uint8Array;
  serverTimestampMs: number;
}

export class ServerView {
  readonly #db: DatabaseSync;

  constructor(readonly path: string) {
    this.#db = new DatabaseSync(path, { readOnly: true });
  }

  /** Envelopes waiting in the mailboxes of these accounts (bounded). */
  mailboxOf(accountIds: readonly string[], limit = 200): StoredRow[] {
    if (accountIds.length === 0) return [];
    const marks = accountIds.map(() => "?").join(", ");
    const rows = this.#db.prepare(
      `SELECT account_id, device_id, sender_account, sender_device, type, content, server_ts
         FROM mailbox WHERE account_id IN (${marks}) ORDER BY server_ts, seq LIMIT ?`,
    ).all(...accountIds, limit) as Record<string, unknown>[];
    return rows.map((row) => ({
      recipient: { accountId: String(row.account_id), deviceId: String(row.device_id) },
      sender: { accountId: String(row.sender_account), deviceId: String(row.sender_device) },
      type: Number(row.type),
      content: row.content as Uint8Array,
      serverTimestampMs: Number(row.server_ts),
    }));
  }

  close(): void {
    this.#db.close();
  }
}

export function describeRow(
  row: StoredRow,
  name: (device: { accountId: string; deviceId: string }) => string,
): string[] {
  const kind = row.type === 1 ? "prekey msg" : row.type === 2 ? "ratchet msg" : `type ${row.type}`;
  return [
    `to ${name(row.recipient)} from ${name(row.sender)}`,
    `  ${kind}, ${row.content.length} bytes, ending`,
    `  …${toHex(row.content.subarray(row.content.length - 12))}`,
  ];
}

/** True when any of the texts appears in the stored bytes (it must not). */
export function containsAny(rows: readonly StoredRow[], texts: readonly string[]): boolean {
  const encoder = new TextEncoder();
  return rows.some((row) =>
    texts.some((text) => {
      const needle = encoder.encode(text);
      outer: for (let i = 0; i + needle.length <= row.content.length; i++) {
        for (let j = 0; j < needle.length; j++) {
          if (row.content[i + j] !== needle[j]) continue outer;
        }
        return true;
      }
      return false;
    })
  );
}
