/**
 * SQLite schema migrations, applied in order; each runs in one transaction together with its
 * schema_migrations row. Append new versions; never edit an applied one.
 */
import { SQLITE_AUTH_MIGRATION } from "./sqlite_auth_migration.ts";

export interface SqliteMigration {
  version: number;
  name: string;
  sql: string;
}

export const SQLITE_MIGRATIONS: SqliteMigration[] = [
  {
    version: 1,
    name: "mailbox",
    sql: `
      -- Per-device sequence counter: kept when a mailbox is purged so seqs are never reused.
      CREATE TABLE mailbox_heads (
        account_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        next_seq INTEGER NOT NULL,
        PRIMARY KEY (account_id, device_id)
      ) WITHOUT ROWID;

      -- Envelopes keyed by (owner, seq): reads are one index range per device.
      CREATE TABLE mailbox (
        account_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL,
        sender_account TEXT NOT NULL,
        sender_device TEXT NOT NULL,
        client_message_id TEXT NOT NULL,
        type INTEGER NOT NULL,
        content BLOB NOT NULL,
        server_ts INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (account_id, device_id, seq),
        FOREIGN KEY (account_id, device_id) REFERENCES mailbox_heads (account_id, device_id)
      );
      CREATE INDEX mailbox_by_expiry ON mailbox (expires_at);

      -- Idempotency records: one per (sender device, clientMessageId), holding the first result.
      CREATE TABLE mailbox_deliveries (
        sender_account TEXT NOT NULL,
        sender_device TEXT NOT NULL,
        client_message_id TEXT NOT NULL,
        digest BLOB NOT NULL,
        server_ts INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        envelopes TEXT NOT NULL,
        PRIMARY KEY (sender_account, sender_device, client_message_id)
      );
      CREATE INDEX mailbox_deliveries_by_expiry ON mailbox_deliveries (expires_at);
    `,
  },
  SQLITE_AUTH_MIGRATION,
  {
    version: 3,
    name: "delivery_record_window",
    sql: `
      -- Idempotency records end with their window (MESSAGING_IDEMPOTENCY_WINDOW_SECONDS), not
      -- with the envelopes: the sender and client message id are not kept for 30 days.
      ALTER TABLE mailbox_deliveries ADD COLUMN record_expires_at INTEGER;
      UPDATE mailbox_deliveries SET record_expires_at = expires_at;
      DROP INDEX mailbox_deliveries_by_expiry;
      CREATE INDEX mailbox_deliveries_by_record_expiry ON mailbox_deliveries (record_expires_at);
    `,
  },
  {
    version: 4,
    name: "pseudonymous_delivery_records",
    sql: `
      -- Idempotency records keyed by a keyed hash of (sender device, client message id), never
      -- the clear values. While envelopes of the delivery wait, the record answers a retry with
      -- the first result (digest, times, envelope ids); "pending" counts those envelopes and,
      -- when it reaches 0, everything but the key and its end is cleared. Records of the old
      -- table are dropped: a retry across this upgrade is delivered again (clients drop the
      -- repeated message as a ratchet duplicate).
      DROP TABLE mailbox_deliveries;
      CREATE TABLE mailbox_delivery_records (
        record_key BLOB NOT NULL PRIMARY KEY,
        digest BLOB,
        server_ts INTEGER,
        expires_at INTEGER,
        envelopes TEXT,
        pending INTEGER NOT NULL,
        record_expires_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX mailbox_delivery_records_by_expiry
        ON mailbox_delivery_records (record_expires_at);
      -- Which record an envelope counts for, so its acknowledgement can settle the record.
      ALTER TABLE mailbox ADD COLUMN record_key BLOB;
    `,
  },
  {
    version: 5,
    name: "groups",
    sql: `
      -- The MLS delivery service: one row per group; its epoch moves in the same transaction
      -- that writes the winning commit into group_commits.
      CREATE TABLE groups (
        group_id BLOB NOT NULL PRIMARY KEY,
        cipher_suite INTEGER NOT NULL,
        epoch INTEGER NOT NULL,
        members TEXT NOT NULL,
        group_info BLOB NOT NULL,
        group_info_epoch INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        fanned_out_epoch INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE group_commits (
        group_id BLOB NOT NULL,
        epoch INTEGER NOT NULL,
        commit_message BLOB NOT NULL,
        welcome BLOB NOT NULL,
        group_info BLOB NOT NULL,
        sender_account TEXT NOT NULL,
        sender_device TEXT NOT NULL,
        record_key BLOB NOT NULL,
        added TEXT NOT NULL,
        removed TEXT NOT NULL,
        server_ts INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (group_id, epoch)
      ) WITHOUT ROWID;
      CREATE INDEX group_commits_by_expiry ON group_commits (expires_at);
      -- Which groups a device is in (ListGroups), kept with the roster in one transaction.
      CREATE TABLE group_members (
        account_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        group_id BLOB NOT NULL,
        PRIMARY KEY (account_id, device_id, group_id)
      ) WITHOUT ROWID;
      -- Key packages handed out by ClaimKeyPackages (SHA-256 refs), for a while: a commit may
      -- add a device only with a package that device published and someone claimed.
      CREATE TABLE key_package_claims (
        account_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        ref TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (account_id, device_id, ref)
      ) WITHOUT ROWID;
      CREATE INDEX key_package_claims_by_expiry ON key_package_claims (expires_at);
    `,
  },
  {
    version: 6,
    name: "media",
    sql: `
      -- Encrypted blobs: metadata only (the bytes are in the blob store).
      CREATE TABLE media (
        media_id TEXT NOT NULL PRIMARY KEY,
        owner_account TEXT NOT NULL,
        owner_device TEXT NOT NULL,
        size INTEGER NOT NULL,
        chunk_size INTEGER NOT NULL,
        sha256 BLOB NOT NULL,
        grantee_accounts TEXT NOT NULL,
        grantee_group BLOB NOT NULL,
        upload_id TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX media_by_expiry ON media (expires_at);
      -- Bytes each account's uploads hold, kept with the records in one transaction.
      CREATE TABLE media_usage (
        account_id TEXT NOT NULL PRIMARY KEY,
        bytes INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 7,
    name: "push",
    sql: `
      -- One push registration per device: the provider token and where it applies.
      CREATE TABLE push_registrations (
        account_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        platform TEXT NOT NULL,
        token TEXT NOT NULL,
        app_id TEXT NOT NULL,
        registered_at INTEGER NOT NULL,
        last_delivered_at INTEGER NOT NULL,
        PRIMARY KEY (account_id, device_id)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 8,
    name: "presence",
    sql: `
      -- Each account's chosen status and last activity (last heartbeat of any device).
      CREATE TABLE presence_states (
        account_id TEXT NOT NULL PRIMARY KEY,
        status TEXT NOT NULL,
        custom_text TEXT NOT NULL,
        last_active INTEGER NOT NULL
      ) WITHOUT ROWID;
      -- Grant hashes per owner: what a watcher may see, never who the watcher is.
      CREATE TABLE presence_grants (
        owner_id TEXT NOT NULL,
        grant_hash BLOB NOT NULL,
        level TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (owner_id, grant_hash)
      ) WITHOUT ROWID;
    `,
  },
];
