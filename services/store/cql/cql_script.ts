/** Pure parsing of migration files: `NNNN_name.cql`, statements ending with `;` at line end. */

export interface CqlMigration {
  version: number;
  name: string;
  statements: string[];
}

const FILE_NAME = /^(\d{4})_([a-z0-9_]{1,64})\.cql$/;
const STATEMENTS_MAX = 100;

/** Version and name from a migration file name, or undefined for other files. */
export function parseMigrationFileName(
  file: string,
): { version: number; name: string } | undefined {
  const match = FILE_NAME.exec(file);
  if (!match) return undefined;
  const version = Number(match[1]);
  return version > 0 ? { version, name: match[2]! } : undefined;
}

/**
 * Splits a migration into statements. A statement ends at a line ending with `;`; lines
 * starting with `--` or `//` are comments. A trailing statement without `;` is an error, so a
 * truncated file never applies half a statement silently.
 */
export function splitCqlStatements(text: string, file = "migration"): string[] {
  const statements: string[] = [];
  let current: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trimEnd();
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("--") || trimmed.startsWith("//")) continue;
    current.push(line);
    if (trimmed.endsWith(";")) {
      const statement = current.join("\n").trim().replace(/;$/, "").trim();
      if (statement !== "") statements.push(statement);
      current = [];
    }
  }
  if (current.length > 0) {
    throw new Error(`${file}: the last statement does not end with ';'`);
  }
  if (statements.length === 0) throw new Error(`${file}: no statements`);
  if (statements.length > STATEMENTS_MAX) {
    throw new Error(`${file}: ${statements.length} statements, above the ${STATEMENTS_MAX} limit`);
  }
  return statements;
}

/** Orders migrations and checks that versions run 1, 2, 3... without gaps or repeats. */
export function orderMigrations(migrations: CqlMigration[]): CqlMigration[] {
  const sorted = [...migrations].sort((a, b) => a.version - b.version);
  sorted.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new Error(
        `CQL migrations must be numbered 0001, 0002, ... without gaps; found ${m.version} ` +
          `where ${i + 1} was expected`,
      );
    }
  });
  return sorted;
}

const ADD_COLUMN = /^ALTER\s+TABLE\s+(\w+)\s+ADD\s+(\w+)\s+\w[\w<>, ]*$/i;

/**
 * The table and column an `ALTER TABLE t ADD c type` statement adds, else undefined. The
 * migrator skips such a statement when the column exists, since ScyllaDB has no
 * `ADD IF NOT EXISTS` and an interrupted migrate must be able to rerun.
 */
export function addedColumn(statement: string): { table: string; column: string } | undefined {
  const match = ADD_COLUMN.exec(statement.trim());
  return match ? { table: match[1]!.toLowerCase(), column: match[2]!.toLowerCase() } : undefined;
}
