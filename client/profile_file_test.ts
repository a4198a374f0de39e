import { join } from "node:path";
import { assert, assertEquals } from "../tests/assert.ts";
import { ProfileFile } from "./profile_file.ts";
import { errorCode } from "./test_support.ts";

const CHEAP = { memoryKiB: 64, iterations: 1, parallelism: 1 };

async function temp(): Promise<string> {
  return join(await Deno.makeTempDir({ prefix: "guardyn-profile-" }), "device.profile");
}

Deno.test("profile file: written encrypted, reopened with the passphrase, replaced atomically", async () => {
  const path = await temp();
  const secret = new TextEncoder().encode("identity private key: 0123456789abcdef");
  const created = await ProfileFile.create(path, "passphrase", secret, CHEAP);
  const raw = await Deno.readFile(path);
  assert(
    !new TextDecoder("latin1").decode(raw).includes("identity private key"),
    "encrypted at rest",
  );
  assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
  // A second process (or client) cannot open it while it is open.
  assertEquals(await errorCode(() => ProfileFile.open(path, "passphrase")), "PROFILE_LOCKED");
  const next = new TextEncoder().encode("second version");
  await created.write(next);
  created.close();
  const opened = await ProfileFile.open(path, "passphrase");
  assertEquals(opened.payload, next);
  opened.close();
  // No temporary file is left behind.
  const names = [];
  for await (const entry of Deno.readDir(join(path, ".."))) names.push(entry.name);
  assertEquals(names.sort(), ["device.profile", "device.profile.lock"]);
  assertEquals(
    await errorCode(() => ProfileFile.create(path, "passphrase", next, CHEAP)),
    "PROFILE_EXISTS",
  );
});

Deno.test("profile file: a wrong passphrase, a flipped bit or a forged cost is refused", async () => {
  const path = await temp();
  (await ProfileFile.create(path, "right", new Uint8Array([1, 2, 3]), CHEAP)).close();
  assertEquals(await errorCode(() => ProfileFile.open(path, "wrong")), "BAD_PASSPHRASE");
  const original = await Deno.readFile(path);
  const flipped = original.slice();
  flipped[flipped.length - 3]! ^= 0x10;
  await Deno.writeFile(path, flipped);
  assertEquals(await errorCode(() => ProfileFile.open(path, "right")), "BAD_PASSPHRASE");
  // The header is authenticated too: a lower cost written into it does not open.
  const cheaper = original.slice();
  cheaper[8 + 8]! = 2; // iterations (low byte of the u32) 1 -> 2
  await Deno.writeFile(path, cheaper);
  assertEquals(await errorCode(() => ProfileFile.open(path, "right")), "BAD_PASSPHRASE");
  const absurd = original.slice();
  new DataView(absurd.buffer).setUint32(9, 0xffff_ffff); // memory KiB
  await Deno.writeFile(path, absurd);
  assertEquals(await errorCode(() => ProfileFile.open(path, "right")), "PROFILE_CORRUPT");
  await Deno.writeFile(path, new TextEncoder().encode("not a profile at all, clearly"));
  assertEquals(await errorCode(() => ProfileFile.open(path, "right")), "PROFILE_CORRUPT");
  assertEquals(
    await errorCode(() => ProfileFile.open(path + ".missing", "right")),
    "PROFILE_MISSING",
  );
});

Deno.test("profile file: destroy removes it", async () => {
  const path = await temp();
  const file = await ProfileFile.create(path, "p", new Uint8Array([9]), CHEAP);
  await file.destroy();
  assertEquals(await ProfileFile.exists(path), false);
  assertEquals(await errorCode(() => file.write(new Uint8Array([1]))), "CLOSED");
});

Deno.test("profile file: a write racing destroy never brings the file back", async () => {
  const path = await temp();
  const file = await ProfileFile.create(path, "p", new Uint8Array([1]), CHEAP);
  // One write in progress, one queued behind it: the first finishes, the second is refused.
  const first = file.write(new Uint8Array(100_000)).then(() => "written", (e) => e.code);
  const second = file.write(new Uint8Array(100_000)).then(() => "written", (e) => e.code);
  await new Promise((resolve) => setTimeout(resolve, 0));
  await file.destroy();
  assertEquals([await first, await second], ["written", "CLOSED"]);
  assertEquals(await ProfileFile.exists(path), false);
  // The lock is released: the path can hold a new profile.
  (await ProfileFile.create(path, "p", new Uint8Array([2]), CHEAP)).close();
});
