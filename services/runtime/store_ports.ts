/**
 * How each backend builds every store port: the one place a new port is registered (its type
 * adds itself to `StorePorts` from its own file). Builders import their adapter on demand, so
 * the embedded setup never loads the Cassandra driver.
 */

import type { DatabaseSync } from "node:sqlite";
import type { PortBuilders } from "../store/ports.ts";
import "../store/group_ports.ts";
import "../store/media_ports.ts";
import "../store/push_ports.ts";
import "../store/presence_ports.ts";
import type { CqlConnection } from "../store/cql/cql_store.ts";

export const SQLITE_PORTS: PortBuilders<DatabaseSync> = {
  mailbox: async (db) => new (await import("../store/sqlite/sqlite_mailbox.ts")).SqliteMailbox(db),
  auth: async (db) => (await import("../store/sqlite/sqlite_auth.ts")).sqliteAuthStores(db),
  groups: async (db) => new (await import("../store/sqlite/sqlite_groups.ts")).SqliteGroups(db),
  media: async (db) => new (await import("../store/sqlite/sqlite_media.ts")).SqliteMedia(db),
  push: async (db) => new (await import("../store/sqlite/sqlite_push.ts")).SqlitePush(db),
  presence: async (db) =>
    new (await import("../store/sqlite/sqlite_presence.ts")).SqlitePresence(db),
};

export const CQL_PORTS: PortBuilders<CqlConnection> = {
  mailbox: async ({ session, keyspace, options }) =>
    new (await import("../store/cql/cql_mailbox.ts")).CqlMailbox(session, keyspace, options),
  auth: async ({ session, keyspace }) =>
    (await import("../store/cql/cql_auth.ts")).cqlAuthStores(session, keyspace),
  groups: async ({ session, keyspace }) =>
    new (await import("../store/cql/cql_groups.ts")).CqlGroups(session, keyspace),
  media: async ({ session, keyspace }) =>
    new (await import("../store/cql/cql_media.ts")).CqlMedia(session, keyspace),
  push: async ({ session, keyspace }) =>
    new (await import("../store/cql/cql_push.ts")).CqlPush(session, keyspace),
  presence: async ({ session, keyspace }) =>
    new (await import("../store/cql/cql_presence.ts")).CqlPresence(session, keyspace),
};
