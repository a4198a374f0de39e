// Waits until a CQL node really answers a query, then prints its release_version on stdout.
// Usage: deno run --allow-net --allow-env --allow-read --allow-sys wait-cql.ts --port 9042 --timeout 180
import { parseEndpoint } from "./endpoint.ts";
import { ciClient } from "./client.ts";
import type { Endpoint } from "./endpoint.ts";

const RETRY_DELAY_MS = 1_000;
const MAX_ERROR_CHARS = 300;

// The driver's NoHostAvailableError embeds every inner error with its stack; its first line says it.
function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return (text.split("\n", 1)[0] ?? "").slice(0, MAX_ERROR_CHARS);
}

async function queryReleaseVersion(endpoint: Endpoint): Promise<string> {
  const client = ciClient(endpoint);
  try {
    await client.connect();
    const result = await client.execute("SELECT release_version FROM system.local");
    const version: unknown = result.first()?.get("release_version");
    if (typeof version !== "string" || version === "") {
      throw new Error("system.local returned no release_version");
    }
    return version;
  } finally {
    await client.shutdown();
  }
}

async function waitForCql(endpoint: Endpoint): Promise<string> {
  const deadline = Date.now() + endpoint.timeoutSeconds * 1000;
  let lastError = "no attempt made";
  while (Date.now() < deadline) {
    try {
      return await queryReleaseVersion(endpoint);
    } catch (error) {
      lastError = firstLine(error);
    }
    await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
  }
  throw new Error(
    `CQL on ${endpoint.host}:${endpoint.port} did not answer within ${endpoint.timeoutSeconds} s; ` +
      `last error: ${lastError}`,
  );
}

if (import.meta.main) {
  try {
    const endpoint = parseEndpoint(Deno.args, 180);
    console.log(await waitForCql(endpoint));
  } catch (error) {
    console.error(`wait-cql: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(1);
  }
}
