/**
 * SQLite schema of the auth stores (migration 2). Tables are keyed by owner; every lookup is
 * a primary key or index range. No foreign keys: refresh tokens and keys may name devices the
 * auth service manages elsewhere, and deletions cascade explicitly in one transaction.
 */
import type { SqliteMigration } from "./migrations.ts";

export const SQLITE_AUTH_MIGRATION: SqliteMigration = {
  version: 2,
  name: "auth",
  sql: `
    -- The UNIQUE index on the canonical username makes a username claim race-safe and serves
    -- prefix searches as an index range.
    CREATE TABLE accounts (
      id TEXT PRIMARY KEY,
      username TEXT NOT NULL,
      password_hash TEXT NOT NULL,
      identity_key BLOB,
      identity_key_changed_at INTEGER,
      created_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX accounts_by_username ON accounts (username);

    CREATE TABLE devices (
      account_id TEXT NOT NULL,
      id TEXT NOT NULL,
      name TEXT NOT NULL,
      platform INTEGER NOT NULL,
      registration_id INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      last_seen_at INTEGER NOT NULL,
      PRIMARY KEY (account_id, id)
    ) WITHOUT ROWID;

    -- Only the SHA-256 of a refresh token is stored. used: rotated once already;
    -- revoked: its family or device was revoked.
    CREATE TABLE refresh_tokens (
      token_hash BLOB PRIMARY KEY,
      family_id TEXT NOT NULL,
      account_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      expires_at INTEGER NOT NULL,
      used INTEGER NOT NULL DEFAULT 0,
      revoked INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
    CREATE INDEX refresh_tokens_by_device ON refresh_tokens (account_id, device_id);
    CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);

    -- One-time items per device and stock ('ec', 'kem', 'kp.<suite>'); a claim deletes one.
    CREATE TABLE one_time_keys (
      account_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      stock TEXT NOT NULL,
      item_id TEXT NOT NULL,
      data BLOB NOT NULL,
      signature BLOB,
      PRIMARY KEY (account_id, device_id, stock, item_id)
    ) WITHOUT ROWID;

    -- Single-valued keys per device: the signed prekey, the last-resort KEM prekey and the
    -- last-resort key package of each cipher suite.
    CREATE TABLE device_key_slots (
      account_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      slot TEXT NOT NULL,
      item_id TEXT NOT NULL,
      data BLOB NOT NULL,
      signature BLOB,
      uploaded_at INTEGER,
      PRIMARY KEY (account_id, device_id, slot)
    ) WITHOUT ROWID;

    CREATE TABLE provisioning_sessions (
      id TEXT PRIMARY KEY,
      wait_secret_hash BLOB NOT NULL,
      expires_at INTEGER NOT NULL,
      sealed_blob BLOB,
      account_id TEXT,
      link_token_hash BLOB
    ) WITHOUT ROWID;
    CREATE INDEX provisioning_by_expiry ON provisioning_sessions (expires_at);
  `,
};
