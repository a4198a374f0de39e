import { join } from "node:path";
import { assert, assertEquals } from "../../tests/assert.ts";
import { isOwnerOnly } from "../platform/private_files.ts";
import { loadTokenKeys } from "../platform/token_keys.ts";
import { memoryLogger } from "../platform/log.ts";
import { openStore } from "./open_store.ts";

const modeOf = async (path: string) => (await Deno.stat(path)).mode! & 0o777;

Deno.test("private files: owner-only modes", () => {
  assert(isOwnerOnly(0o600) && isOwnerOnly(0o700) && isOwnerOnly(0o100600));
  assert(!isOwnerOnly(0o644) && !isOwnerOnly(0o640) && !isOwnerOnly(0o701));
});

// Before the fix, the data directory was 0755 and the database and its WAL 0644.
Deno.test("private files: the embedded store's directory is 0700, its database, WAL and shm 0600", async () => {
  const root = await Deno.makeTempDir({ prefix: "guardyn-modes-" });
  try {
    const path = join(root, "data", "guardyn.db");
    const log = memoryLogger();
    const store = await openStore({ backend: "sqlite", path }, log);
    await loadTokenKeys(undefined, path, log);
    try {
      assertEquals(await modeOf(join(root, "data")), 0o700);
      for (
        const file of [path, `${path}-wal`, `${path}-shm`, join(root, "data", "token-keys.json")]
      ) {
        assertEquals(await modeOf(file), 0o600, file);
      }
    } finally {
      await store.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("private files: a database left readable by others is tightened at startup, and said", async () => {
  const root = await Deno.makeTempDir({ prefix: "guardyn-modes-" });
  try {
    const path = join(root, "guardyn.db");
    const first = await openStore({ backend: "sqlite", path }, memoryLogger());
    await first.close();
    await Deno.chmod(path, 0o644);
    await Deno.chmod(root, 0o755);
    const log = memoryLogger();
    const store = await openStore({ backend: "sqlite", path }, log);
    await store.close();
    assertEquals(await modeOf(path), 0o600);
    // An existing directory may be shared (/tmp): reported, never changed.
    assertEquals(await modeOf(root), 0o755);
    const warnings = log.lines.filter((line) => line.level === "warn").map((line) => line.msg);
    assertEquals(warnings, [
      "store files were readable by others: set to 0600",
      "the data directory is accessible to other users; make it 0700",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
