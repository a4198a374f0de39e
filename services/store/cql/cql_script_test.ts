import { assertEquals, assertThrows } from "../../../tests/assert.ts";
import { parseReplication, replicationCql } from "./cql_options.ts";
import {
  addedColumn,
  orderMigrations,
  parseMigrationFileName,
  splitCqlStatements,
} from "./cql_script.ts";

Deno.test("migration file names: 0001_name.cql only", () => {
  assertEquals(parseMigrationFileName("0001_init.cql"), { version: 1, name: "init" });
  assertEquals(parseMigrationFileName("0012_add_index.cql"), { version: 12, name: "add_index" });
  for (const bad of ["1_init.cql", "0001-init.cql", "0001_Init.cql", "0000_zero.cql", "x.cql"]) {
    assertEquals(parseMigrationFileName(bad), undefined, bad);
  }
});

Deno.test("statements split at lines ending with ';', comments skipped", () => {
  const text = `-- a comment; with a semicolon
CREATE TABLE a (
  x int PRIMARY KEY
);
// another comment
CREATE TABLE b (y int PRIMARY KEY) WITH comment = 'b';

`;
  assertEquals(splitCqlStatements(text), [
    "CREATE TABLE a (\n  x int PRIMARY KEY\n)",
    "CREATE TABLE b (y int PRIMARY KEY) WITH comment = 'b'",
  ]);
  assertThrows(() => splitCqlStatements("CREATE TABLE a (x int PRIMARY KEY)"), /does not end/);
  assertThrows(() => splitCqlStatements("-- only a comment\n"), /no statements/);
});

Deno.test("migrations must be numbered without gaps", () => {
  const m = (version: number) => ({ version, name: "m", statements: ["X"] });
  assertEquals(orderMigrations([m(2), m(1)]).map((x) => x.version), [1, 2]);
  assertThrows(() => orderMigrations([m(1), m(3)]), /without gaps/);
  assertThrows(() => orderMigrations([m(1), m(1)]), /without gaps/);
});

Deno.test("replication settings parse into CREATE KEYSPACE maps", () => {
  assertEquals(
    replicationCql(parseReplication("SimpleStrategy:1")),
    "{'class': 'SimpleStrategy', 'replication_factor': 1}",
  );
  assertEquals(
    replicationCql(parseReplication("NetworkTopologyStrategy:dc1=3,dc2=2")),
    "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}",
  );
  for (
    const bad of [
      "SimpleStrategy",
      "SimpleStrategy:0",
      "Simple:1",
      "NetworkTopologyStrategy:dc1",
      "NetworkTopologyStrategy:dc1=3,dc1=3",
      "NetworkTopologyStrategy:d'c=3",
    ]
  ) {
    assertThrows(() => parseReplication(bad), Error);
  }
});

Deno.test("cql script: ALTER TABLE ... ADD names the column a rerun skips", () => {
  assertEquals(addedColumn("ALTER TABLE mailbox ADD record_key blob"), {
    table: "mailbox",
    column: "record_key",
  });
  assertEquals(addedColumn("alter table Mailbox add Seen map<text, int>"), {
    table: "mailbox",
    column: "seen",
  });
  assertEquals(addedColumn("ALTER TABLE mailbox DROP record_key"), undefined);
  assertEquals(addedColumn("CREATE TABLE IF NOT EXISTS t (a int PRIMARY KEY)"), undefined);
});
