import { join } from "node:path";
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { SQLITE_MIGRATIONS } from "../services/store/sqlite/migrations.ts";
import { migrate, readMigrateSettings } from "./migrate.ts";

const LATEST = SQLITE_MIGRATIONS.at(-1)!.version;

Deno.test("migrate settings: SQLite is the default, with the services' default path", () => {
  assertEquals(readMigrateSettings({}), {
    store: { backend: "sqlite", path: "./.guardyn/guardyn.db" },
  });
});

Deno.test("migrate settings: CQL with replication and credentials", () => {
  const settings = readMigrateSettings({
    STORE_BACKEND: "cql",
    CQL_CONTACT_POINTS: "10.0.0.1:9042, 10.0.0.2:9042",
    CQL_LOCAL_DC: "dc1",
    CQL_KEYSPACE: "guardyn_prod",
    CQL_USERNAME: "ops",
    CQL_PASSWORD: "pw",
    CQL_REPLICATION: "NetworkTopologyStrategy:dc1=3",
  });
  assertEquals(settings, {
    store: {
      backend: "cql",
      contactPoints: ["10.0.0.1:9042", "10.0.0.2:9042"],
      localDataCenter: "dc1",
      keyspace: "guardyn_prod",
      username: "ops",
      password: "pw",
      connectTimeoutMs: 10_000,
    },
    replication: { strategy: "NetworkTopologyStrategy", dataCenters: { dc1: 3 } },
  });
});

Deno.test("migrate settings: bad values are named", () => {
  assertThrows(() => readMigrateSettings({ STORE_BACKEND: "postgres" }), /STORE_BACKEND/);
  assertThrows(() => readMigrateSettings({ STORE_BACKEND: "cql" }), /CQL_CONTACT_POINTS/);
  assertThrows(
    () =>
      readMigrateSettings({ STORE_BACKEND: "cql", CQL_CONTACT_POINTS: "h:1", CQL_USERNAME: "u" }),
    /set together/,
  );
  assertThrows(
    () =>
      readMigrateSettings({
        STORE_BACKEND: "cql",
        CQL_CONTACT_POINTS: "h:1",
        CQL_REPLICATION: "Simple:1",
      }),
    /CQL_REPLICATION/,
  );
});

Deno.test("migrate: brings a new SQLite file to the latest schema, then does nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "guardyn-migrate-" });
  try {
    const path = join(dir, "db", "guardyn.db");
    const first: string[] = [];
    await migrate({ store: { backend: "sqlite", path } }, (line) => first.push(line));
    assertEquals(first, [
      ...SQLITE_MIGRATIONS.map((m) => `applied SQLite migration ${m.version}`),
      `SQLite file ${path} at schema version ${LATEST}`,
    ]);
    const second: string[] = [];
    await migrate({ store: { backend: "sqlite", path } }, (line) => second.push(line));
    assertEquals(second, [`SQLite file ${path} at schema version ${LATEST}`]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
