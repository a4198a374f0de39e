/**
 * Files only the service's own user may read: the embedded database (and its WAL and shared
 * memory files), token keys, profiles. A data directory Guardyn creates is 0700 and every file
 * it creates 0600; existing files of its own that are looser are tightened at startup. An
 * existing directory is never changed (it may be shared, like /tmp): a loose one is reported.
 */

/** True when no one but the owner has any access bit. */
export function isOwnerOnly(mode: number): boolean {
  return (mode & 0o077) === 0;
}

export interface PrivacyReport {
  /** Files whose mode was looser than 0600 and was set to 0600. */
  tightened: string[];
  /** An existing directory that others can enter or read (left as it is). */
  looseDirectory?: string;
}

/** Creates `dir` 0700 if missing; reports an existing one that others can access. */
export async function ensurePrivateDirectory(dir: string, report: PrivacyReport): Promise<void> {
  const existing = await Deno.stat(dir).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  });
  if (!existing) {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await Deno.chmod(dir, 0o700);
    return;
  }
  if (existing.mode !== null && !isOwnerOnly(existing.mode)) report.looseDirectory = dir;
}

/** Creates `path` empty with mode 0600 if missing; sets an existing looser file to 0600. */
export async function ensurePrivateFile(
  path: string,
  report: PrivacyReport,
  options: { create: boolean } = { create: true },
): Promise<void> {
  const existing = await Deno.stat(path).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  });
  if (!existing) {
    if (!options.create) return;
    (await Deno.open(path, { write: true, createNew: true, mode: 0o600 })).close();
    return;
  }
  if (existing.mode !== null && !isOwnerOnly(existing.mode)) {
    await Deno.chmod(path, 0o600);
    report.tightened.push(path);
  }
}
