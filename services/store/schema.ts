/**
 * Schema versioning rules shared by the adapters. Policy: services check the schema at startup
 * and refuse to run on one they do not know; `deno task migrate` applies migrations. The embedded
 * SQLite store is the one exception: it migrates on open (see sqlite/sqlite_store.ts).
 */
import { SchemaMismatchError } from "./errors.ts";

export interface MigrationRef {
  version: number;
  name: string;
}

export type SchemaPlan =
  | { state: "current"; version: number }
  | { state: "behind"; version: number; pending: MigrationRef[] };

/** The highest version in a list, or 0 for none. */
export function latestVersion(migrations: MigrationRef[]): number {
  return migrations.reduce((max, m) => Math.max(max, m.version), 0);
}

/**
 * Compares what the database has applied with what this binary knows. Throws
 * SchemaMismatchError when the database is newer or its history is not ours.
 */
export function planSchema(
  where: string,
  applied: MigrationRef[],
  known: MigrationRef[],
): SchemaPlan {
  const knownLatest = latestVersion(known);
  const dbVersion = latestVersion(applied);
  if (dbVersion > knownLatest) {
    throw new SchemaMismatchError(
      `${where} has schema version ${dbVersion}, newer than version ${knownLatest} this binary ` +
        `knows: deploy a build that knows version ${dbVersion}`,
    );
  }
  const sorted = [...applied].sort((a, b) => a.version - b.version);
  sorted.forEach((m, i) => {
    const expected = known[i];
    if (!expected || expected.version !== m.version || expected.name !== m.name) {
      throw new SchemaMismatchError(
        `${where} has an unknown schema history: applied migration ${m.version} '${m.name}' ` +
          `does not match this binary's migration ${expected?.version ?? "(none)"} ` +
          `'${expected?.name ?? ""}'`,
      );
    }
  });
  if (dbVersion === knownLatest) return { state: "current", version: dbVersion };
  return { state: "behind", version: dbVersion, pending: known.slice(sorted.length) };
}

/** The refusal a service gives when the database is older than this binary. */
export function behindError(where: string, version: number, known: number): SchemaMismatchError {
  return new SchemaMismatchError(
    `${where} has schema version ${version}, older than version ${known} this binary knows: ` +
      "run `deno task migrate` first",
  );
}
