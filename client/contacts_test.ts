import { assert, assertEquals } from "../tests/assert.ts";
import { encodePublicKey, generateIdentityKeyPair } from "../crypto/mod.ts";
import { Contacts, safetyNumberFor, safetyNumbersMatch } from "./contacts.ts";

const key = async () => encodePublicKey((await generateIdentityKeyPair()).publicKey);

Deno.test("contacts: first key trusted, same key fine, a change warns and blocks only verified contacts", async () => {
  const contacts = new Contacts();
  const [first, second, third] = [await key(), await key(), await key()];
  assertEquals(contacts.observeIdentity("bob", first, 1), { kind: "new" });
  assertEquals(contacts.observeIdentity("bob", first, 2), { kind: "same" });
  assertEquals(contacts.observeIdentity("bob", second, 3), { kind: "changed", wasVerified: false });
  assertEquals([contacts.get("bob")!.blocked, contacts.get("bob")!.changedAtMs], [false, 3]);
  contacts.markVerified("bob", true);
  assertEquals(contacts.get("bob")!.verified, true);
  assertEquals(contacts.observeIdentity("bob", third, 4), { kind: "changed", wasVerified: true });
  assertEquals([contacts.get("bob")!.verified, contacts.get("bob")!.blocked], [false, true]);
  assertEquals(contacts.get("bob")!.identityKey, third);
  contacts.acceptIdentity("bob");
  assertEquals(contacts.get("bob")!.blocked, false);
  // Names are stored lowercase and found case-insensitively; the JSON form round-trips.
  contacts.upsert("carol-id", "Carol");
  assertEquals(contacts.byUsername("CAROL")?.accountId, "carol-id");
  assertEquals(Contacts.fromJSON(JSON.parse(JSON.stringify(contacts))).all(), contacts.all());
});

Deno.test("contacts: both sides compute the same safety number; comparison ignores spacing", async () => {
  const [a, b] = [await key(), await key()];
  const ours = safetyNumberFor({ accountId: "alice", identityKey: a }, {
    accountId: "bob",
    identityKey: b,
  });
  const theirs = safetyNumberFor({ accountId: "bob", identityKey: b }, {
    accountId: "alice",
    identityKey: a,
  });
  assertEquals(ours, theirs);
  assert(/^\d{60}$/.test(ours));
  assert(safetyNumbersMatch(ours, ours.replace(/(\d{5})/g, "$1 ").trim()));
  assert(!safetyNumbersMatch(ours, ours.slice(0, 59) + (ours.endsWith("0") ? "1" : "0")));
  assert(!safetyNumbersMatch(ours, ours.slice(0, 30)));
  const other = safetyNumberFor({ accountId: "alice", identityKey: a }, {
    accountId: "bob",
    identityKey: await key(),
  });
  assert(other !== ours, "another key, another number");
});
