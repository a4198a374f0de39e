/** The auth stores on one CQL session (schema: migrations/0002_auth.cql). */
import type { AuthStores } from "../auth_ports.ts";
import { CqlAccounts } from "./cql_auth_accounts.ts";
import { CqlDevices } from "./cql_auth_devices.ts";
import { CqlKeyPackages, CqlKeyShelf, CqlPrekeys } from "./cql_auth_keys.ts";
import { CqlProvisioning } from "./cql_auth_provisioning.ts";
import { CqlRefreshTokens } from "./cql_auth_tokens.ts";
import type { CqlSession } from "./cql_session.ts";

export function cqlAuthStores(session: CqlSession, keyspace: string): AuthStores {
  const shelf = new CqlKeyShelf(session, keyspace);
  const tokens = new CqlRefreshTokens(session, keyspace);
  const devices = new CqlDevices(session, keyspace, shelf, tokens);
  return {
    accounts: new CqlAccounts(session, keyspace, { devices, shelf, tokens }),
    devices,
    refreshTokens: tokens,
    prekeys: new CqlPrekeys(shelf),
    keyPackages: new CqlKeyPackages(shelf),
    provisioning: new CqlProvisioning(session, keyspace),
  };
}
