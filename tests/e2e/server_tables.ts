/**
 * Reads the server's own tables, every row and every column, and looks for secrets that must
 * never be there: a plaintext marker and private key bytes. SQLite is read from the file
 * (read-only); CQL through cassandra-driver on the test keyspace. Values are searched raw
 * (blobs) and as text, hex, base64 and base64url (strings).
 */

import { DatabaseSync } from "node:sqlite";
import cassandra from "cassandra-driver";
import { toBase64, toBase64Url, toHex } from "../../client/bytes.ts";

export interface Needle {
  name: string;
  bytes: Uint8Array;
}

export interface Hit {
  table: string;
  column: string;
  needle: string;
}

export interface ScanReport {
  tables: number;
  rows: number;
  /** Bytes of blob/text data looked at. */
  bytes: number;
  hits: Hit[];
}

/** Only long enough needles: a short one could match by chance. */
const MIN_NEEDLE_BYTES = 16;

function matcher(needles: readonly Needle[]) {
  const prepared = needles.map((needle) => {
    if (needle.bytes.length < MIN_NEEDLE_BYTES) {
      throw new Error(`needle ${needle.name} is too short`);
    }
    const text = new TextDecoder("utf-8", { fatal: false }).decode(needle.bytes);
    return {
      name: needle.name,
      bytes: needle.bytes,
      strings: [
        text,
        toHex(needle.bytes),
        toBase64(needle.bytes).replace(/=+$/, ""),
        toBase64Url(needle.bytes),
      ],
    };
  });
  return (value: unknown): string[] => {
    if (value instanceof Uint8Array) {
      return prepared.filter((n) => containsBytes(value, n.bytes)).map((n) => n.name);
    }
    if (typeof value === "string") {
      const lower = value.toLowerCase();
      return prepared.filter((n) =>
        n.strings.some((s) => value.includes(s) || (s === n.strings[1] && lower.includes(s)))
      ).map((n) => n.name);
    }
    return [];
  };
}

function sizeOf(value: unknown): number {
  if (value instanceof Uint8Array) return value.length;
  if (typeof value === "string") return value.length;
  return 0;
}

export function containsBytes(haystack: Uint8Array, needle: Uint8Array): boolean {
  const first = needle[0];
  outer: for (
    let i = haystack.indexOf(first!);
    i !== -1 && i + needle.length <= haystack.length;
    i = haystack.indexOf(first!, i + 1)
  ) {
    for (let j = 1; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

export function scanSqlite(path: string, needles: readonly Needle[]): ScanReport {
  const match = matcher(needles);
  const db = new DatabaseSync(path, { readOnly: true });
  const report: ScanReport = { tables: 0, rows: 0, bytes: 0, hits: [] };
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as {
      name: string;
    }[];
    for (const { name } of tables) {
      report.tables++;
      for (const row of db.prepare(`SELECT * FROM "${name.replaceAll('"', '""')}"`).iterate()) {
        report.rows++;
        for (const [column, value] of Object.entries(row as Record<string, unknown>)) {
          report.bytes += sizeOf(value);
          for (const needle of match(value)) report.hits.push({ table: name, column, needle });
        }
      }
    }
  } finally {
    db.close();
  }
  return report;
}

export async function scanCql(
  contactPoints: string[],
  keyspace: string,
  needles: readonly Needle[],
): Promise<ScanReport> {
  const match = matcher(needles);
  const client = new cassandra.Client({ contactPoints, localDataCenter: "datacenter1", keyspace });
  const report: ScanReport = { tables: 0, rows: 0, bytes: 0, hits: [] };
  try {
    await client.connect();
    const tables = await client.execute(
      "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?",
      [keyspace],
      { prepare: true },
    );
    for (const { table_name: table } of tables.rows) {
      report.tables++;
      const query = `SELECT * FROM "${String(table)}"`;
      let pageState: string | undefined;
      do {
        const page = await client.execute(query, [], { prepare: false, fetchSize: 500, pageState });
        for (const row of page.rows) {
          report.rows++;
          for (const column of row.keys()) {
            for (const value of flatten(row.get(column))) {
              report.bytes += sizeOf(value);
              for (const needle of match(value)) {
                report.hits.push({ table: String(table), column, needle });
              }
            }
          }
        }
        pageState = page.pageState ?? undefined;
      } while (pageState);
    }
  } finally {
    await client.shutdown();
  }
  return report;
}

/** Collections (maps, sets, lists) hold values too. */
function* flatten(value: unknown): Generator<unknown> {
  if (value instanceof Uint8Array || typeof value === "string") {
    yield value;
  } else if (value instanceof Map) {
    for (const [k, v] of value) {
      yield* flatten(k);
      yield* flatten(v);
    }
  } else if (Array.isArray(value) || value instanceof Set) {
    for (const item of value) yield* flatten(item);
  } else if (value !== null && typeof value === "object" && "toString" in value) {
    yield String(value);
  }
}
