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

  /** A group's commit log as stored (the delivery service keeps it for catching up). */
  groupLog(groupIdHex: string): StoredRow[] {
    const rows = this.#db.prepare(
      `SELECT sender_account, sender_device, commit_message, server_ts FROM group_commits
         WHERE group_id = ? ORDER BY epoch`,
    ).all(hexBytes(groupIdHex)) as Record<string, unknown>[];
    return rows.map((row) => ({
      recipient: { accountId: GROUP_LOG, deviceId: GROUP_LOG },
      sender: { accountId: String(row.sender_account), deviceId: String(row.sender_device) },
      type: 5,
      content: row.commit_message as Uint8Array,
      serverTimestampMs: Number(row.server_ts),
    }));
  }

  close(): void {
    this.#db.close();
  }
}

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}

export function describeRow(
  row: StoredRow,
  name: (device: { accountId: string; deviceId: string }) => string,
): string[] {
  const kind = KINDS[row.type] ?? `type ${row.type}`;
  const to = row.recipient.accountId === GROUP_LOG
    ? "in the group log"
    : `to ${name(row.recipient)}`;
  return [
    `${to} from ${name(row.sender)}`,
    `  ${kind}, ${row.content.length} bytes, ending`,
    `  …${toHex(row.content.subarray(row.content.length - 12))}`,
  ];
}

/** The "recipient" of a row of the group's commit log. */
const GROUP_LOG = "group log";

const KINDS: Record<number, string> = {
  1: "prekey msg",
  2: "ratchet msg",
  3: "MLS welcome",
  4: "MLS group msg",
  5: "MLS commit",
};

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
