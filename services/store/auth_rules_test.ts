import fc from "fast-check";
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  checkUsername,
  keyIdItem,
  prekeyFromItem,
  prekeyItem,
  rotateState,
  SEARCH_LIMIT_MAX,
  searchBuckets,
  searchRange,
  successor,
  usernameBucket,
  validateSearch,
  validateUpload,
} from "./auth_rules.ts";
import { StoreInputError } from "./errors.ts";

const usernameChar = fc.constantFrom(..."abcxyz019_-.~!".split(""));
const username = fc.array(usernameChar, { minLength: 1, maxLength: 8 }).map((c) => c.join(""));

Deno.test("auth rules: a prefix search reads exactly the groups that hold its usernames", () => {
  fc.assert(
    fc.property(username, username, (name, prefix) => {
      const buckets = searchBuckets(prefix);
      const matches = name.startsWith(prefix);
      if (matches) assert(buckets.includes(usernameBucket(name)), `${name} / ${prefix}`);
      // The groups are listed in username order, so walking them keeps the results sorted.
      assertEquals(buckets, [...buckets].sort());
    }),
  );
});

Deno.test("auth rules: the search range holds exactly the usernames after the cursor", () => {
  fc.assert(
    fc.property(username, username, fc.option(username, { nil: "" }), (name, prefix, after) => {
      const range = searchRange(prefix, after);
      const inRange = (range.inclusive ? name >= range.from : name > range.from) &&
        name < range.end;
      assertEquals(inRange, name.startsWith(prefix) && name > after, `${name} ${prefix} ${after}`);
    }),
  );
});

Deno.test("auth rules: usernames must be canonical, searches bounded", () => {
  checkUsername("alice_01");
  for (const bad of ["Alice", "a b", "", "é", "a".repeat(65), "tab\t"]) {
    assertThrows(() => checkUsername(bad), StoreInputError);
  }
  assertThrows(() => validateSearch("", "", 10), /prefix/);
  assertThrows(() => validateSearch("al", "", SEARCH_LIMIT_MAX + 1), /1\.\.100/);
  assertThrows(() => validateSearch("al", "", 0), StoreInputError);
  validateSearch("al", "alice", SEARCH_LIMIT_MAX);
});

Deno.test("auth rules: rotation decisions", () => {
  const live = { expiresAtMs: 2000, used: false, revoked: false };
  assertEquals(rotateState(undefined, 1000).kind, "unknown");
  assertEquals(rotateState(live, 1000).kind, "rotatable");
  assertEquals(rotateState(live, 2000).kind, "expired");
  assertEquals(rotateState({ ...live, used: true }, 1000).kind, "reused");
  // A revoked family refuses even its unused tokens, and reports them as reuse.
  assertEquals(rotateState({ ...live, revoked: true }, 1000).kind, "reused");
  const old = {
    tokenHash: new Uint8Array(32),
    familyId: "f",
    accountId: "a",
    deviceId: "d",
    expiresAtMs: 1,
  };
  const next = { tokenHash: new Uint8Array(32).fill(1), expiresAtMs: 99 };
  assertEquals(successor(old, next), { ...old, ...next });
});

Deno.test("auth rules: key ids sort numerically as item ids and round-trip", () => {
  const ids = [0, 7, 10, 99, 4242, 0xffff_ffff];
  const items = ids.map(keyIdItem);
  assertEquals([...items].sort(), items);
  const prekey = { keyId: 4242, publicKey: new Uint8Array(33).fill(5) };
  assertEquals(prekeyFromItem(prekeyItem(prekey, "p")), prekey);
  assertThrows(() => prekeyItem({ keyId: -1, publicKey: new Uint8Array(33) }, "p"), /keyId/);
  assertThrows(() => prekeyItem({ keyId: 1, publicKey: new Uint8Array(0) }, "p"), /publicKey/);
});

Deno.test("auth rules: uploads are bounded and ids unique within one upload", () => {
  const item = (itemId: string) => ({ itemId, data: new Uint8Array(1) });
  assertEquals(validateUpload([item("1"), item("2")], 10).length, 2);
  assertThrows(() => validateUpload([item("1"), item("1")], 10), /twice/);
  assertThrows(() => validateUpload([], 0), /maxTotal/);
  assertThrows(
    () => validateUpload(Array.from({ length: 1001 }, (_, i) => item(String(i))), 10_000),
    /1000 limit/,
  );
});
