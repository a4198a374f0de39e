import { assert, assertEquals } from "../../tests/assert.ts";
import { canonicalUsername, passwordProblem } from "./account_rules.ts";
import { dummyHash, hashPassword, OWASP_ARGON2ID, verifyPassword } from "./password.ts";

Deno.test("password: Argon2id PHC hash at the OWASP cost verifies only the right password", async () => {
  const hash = await hashPassword("correct horse battery");
  assert(hash.startsWith(`$argon2id$v=19$m=${OWASP_ARGON2ID.memoryKiB},t=2,p=1$`), hash);
  assert(await verifyPassword("correct horse battery", hash));
  assert(!await verifyPassword("correct horse batterz", hash));
  assert(!await verifyPassword("x", "not a hash"));
  const again = await hashPassword("correct horse battery");
  assert(again !== hash, "salts are random");
  assert(!await verifyPassword("anything", await dummyHash()));
});

Deno.test("password: length limits", () => {
  assertEquals(passwordProblem("short"), "password must be 8 to 256 characters");
  assertEquals(passwordProblem("x".repeat(257)), "password must be 8 to 256 characters");
  assertEquals(passwordProblem("long enough"), undefined);
});

Deno.test("username: canonical lowercase, 3-32 of [a-z0-9_]", () => {
  assertEquals(canonicalUsername("Alice_01"), "alice_01");
  assertEquals(canonicalUsername("  bob  "), "bob");
  for (const bad of ["ab", "a".repeat(33), "al ice", "alice!", "ålice", "", "a-b"]) {
    assertEquals(canonicalUsername(bad), undefined, bad);
  }
});
