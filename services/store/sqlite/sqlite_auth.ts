/** The auth stores on one SQLite connection (schema: sqlite_auth_migration.ts). */
import type { DatabaseSync } from "node:sqlite";
import type { AuthStores } from "../auth_ports.ts";
import { SqliteAccounts, SqliteDevices } from "./sqlite_auth_accounts.ts";
import { SqliteAuthCascade } from "./sqlite_auth_cascade.ts";
import { SqliteKeyPackages, SqliteKeyShelf, SqlitePrekeys } from "./sqlite_auth_keys.ts";
import { SqliteProvisioning, SqliteRefreshTokens } from "./sqlite_auth_tokens.ts";

export function sqliteAuthStores(db: DatabaseSync): AuthStores {
  const cascade = new SqliteAuthCascade(db);
  const shelf = new SqliteKeyShelf(db);
  return {
    accounts: new SqliteAccounts(db, cascade),
    devices: new SqliteDevices(db, cascade),
    refreshTokens: new SqliteRefreshTokens(db),
    prekeys: new SqlitePrekeys(shelf),
    keyPackages: new SqliteKeyPackages(shelf),
    provisioning: new SqliteProvisioning(db),
  };
}
