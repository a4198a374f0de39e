/**
 * What a device or an account owns besides its own row: keys, key packages and refresh
 * tokens. Callers run these inside their transaction, so a removal is all or nothing.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";

export class SqliteAuthCascade {
  readonly #deviceStatements: StatementSync[];
  readonly #deviceKeyStatements: StatementSync[];
  readonly #accountStatements: StatementSync[];

  constructor(db: DatabaseSync) {
    const device = "WHERE account_id = ? AND device_id = ?";
    this.#deviceKeyStatements = [
      db.prepare(`DELETE FROM one_time_keys ${device}`),
      db.prepare(`DELETE FROM device_key_slots ${device}`),
    ];
    this.#deviceStatements = [
      ...this.#deviceKeyStatements,
      db.prepare(`DELETE FROM refresh_tokens ${device}`),
    ];
    this.#accountStatements = [
      db.prepare("DELETE FROM one_time_keys WHERE account_id = ?"),
      db.prepare("DELETE FROM device_key_slots WHERE account_id = ?"),
      db.prepare("DELETE FROM refresh_tokens WHERE account_id = ?"),
      db.prepare("DELETE FROM devices WHERE account_id = ?"),
    ];
  }

  /** Prekeys and key packages of one device (stale after a reinstall). */
  deviceKeys(accountId: string, deviceId: string): void {
    for (const statement of this.#deviceKeyStatements) statement.run(accountId, deviceId);
  }

  /** Keys, key packages and refresh tokens of one device. */
  device(accountId: string, deviceId: string): void {
    for (const statement of this.#deviceStatements) statement.run(accountId, deviceId);
  }

  /** Devices, keys, key packages and refresh tokens of a whole account. */
  account(accountId: string): void {
    for (const statement of this.#accountStatements) statement.run(accountId);
  }
}
