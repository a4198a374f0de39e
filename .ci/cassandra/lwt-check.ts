// Checks what Guardyn needs from the CI node: a SimpleStrategy RF 1 keyspace and lightweight
// transactions (INSERT ... IF NOT EXISTS applies once, then reports the existing row).
// Usage: deno run --allow-net --allow-env --allow-read --allow-sys lwt-check.ts --port 9042
import { parseEndpoint } from "./endpoint.ts";
import { ciClient } from "./client.ts";
import type { Endpoint } from "./endpoint.ts";

async function checkLightweightTransactions(endpoint: Endpoint): Promise<void> {
  // A random keyspace so parallel runs against one shared node never collide.
  const keyspace = `ci_lwt_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const client = ciClient(endpoint);
  try {
    await client.connect();
    await client.execute(
      `CREATE KEYSPACE ${keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`,
    );
    try {
      await client.execute(`CREATE TABLE ${keyspace}.claims (id text PRIMARY KEY, owner text)`);
      const insert = `INSERT INTO ${keyspace}.claims (id, owner) VALUES (?, ?) IF NOT EXISTS`;
      const first = await client.execute(insert, ["prekey-1", "alice"], { prepare: true });
      const second = await client.execute(insert, ["prekey-1", "bob"], { prepare: true });
      if (!first.wasApplied()) throw new Error("first INSERT ... IF NOT EXISTS was not applied");
      if (second.wasApplied()) throw new Error("second INSERT ... IF NOT EXISTS was applied twice");
      const owner: unknown = second.first()?.get("owner");
      if (owner !== "alice") {
        throw new Error(`losing LWT should report owner 'alice', got '${String(owner)}'`);
      }
      const update = `UPDATE ${keyspace}.claims SET owner = ? WHERE id = ? IF owner = ?`;
      const cas = await client.execute(update, ["carol", "prekey-1", "alice"], { prepare: true });
      if (!cas.wasApplied()) {
        throw new Error("compare-and-set UPDATE ... IF owner = ? was not applied");
      }
    } finally {
      await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    }
  } finally {
    await client.shutdown();
  }
  console.log(
    `ok: keyspace ${keyspace} (SimpleStrategy RF 1), INSERT IF NOT EXISTS and UPDATE IF work`,
  );
}

if (import.meta.main) {
  try {
    await checkLightweightTransactions(parseEndpoint(Deno.args, 60));
  } catch (error) {
    console.error(`lwt-check: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(1);
  }
}
