import { assert, assertEquals } from "../tests/assert.ts";
import {
  acceptSession,
  encodePublicKey,
  generateIdentityKeyPair,
  initiateSession,
} from "../crypto/mod.ts";
import { PrekeyVault } from "./prekey_vault.ts";
import { SessionBook } from "./session_book.ts";

async function device() {
  const identity = await generateIdentityKeyPair();
  const vault = new PrekeyVault();
  const signed = await vault.newSignedPrekey(identity, 0);
  const lastResort = await vault.newLastResortKem(identity, 0);
  const oneTime = await vault.newOneTimePrekeys(identity, 2, 0);
  const kem = await vault.newKemPrekeys(identity, 2, 0);
  return {
    identity,
    vault,
    signed,
    lastResort,
    oneTime,
    kem,
    identityKey: encodePublicKey(identity.publicKey),
  };
}

Deno.test("prekey vault: serves a handshake with an unsigned one-time key (as the API sends it), consumes it once", async () => {
  const bob = await device();
  const alice = await generateIdentityKeyPair();
  // The API carries no signature for one-time EC prekeys.
  const bundle = {
    identityKey: bob.identityKey,
    signedPrekey: bob.signed,
    oneTimePrekey: {
      id: bob.oneTime[0]!.id,
      publicKey: bob.oneTime[0]!.publicKey,
      signature: new Uint8Array(),
    },
    kemPrekey: bob.kem[0]!,
  };
  const session = await initiateSession(alice, bundle);
  const first = await session.encrypt(new TextEncoder().encode("hi"));
  assertEquals([bob.vault.oneTimeCount, bob.vault.kemCount], [2, 2]);
  const accepted = await acceptSession(bob.identity, first, bob.vault, Date.now());
  assertEquals(new TextDecoder().decode(accepted.plaintext), "hi");
  assertEquals([bob.vault.oneTimeCount, bob.vault.kemCount], [1, 1]);
  // The same handshake again finds its one-time keys gone.
  let reused = "";
  await acceptSession(bob.identity, first, bob.vault, Date.now()).catch((e) => (reused = e.code));
  assertEquals(reused, "prekey-reused");
});

Deno.test("prekey vault: the last-resort key is never consumed; ids never collide; JSON round-trips", async () => {
  const bob = await device();
  assert(bob.vault.isLastResortKem(bob.lastResort.id));
  assert(!bob.vault.isLastResortKem(bob.kem[0]!.id));
  assertEquals(bob.vault.consumeOneTimePrekeys({ kemPrekeyId: bob.lastResort.id }), true);
  assertEquals(bob.vault.consumeOneTimePrekeys({ kemPrekeyId: bob.lastResort.id }), true);
  assertEquals(bob.vault.consumeOneTimePrekeys({ oneTimePrekeyId: 999 }), false);
  const kemIds = [bob.lastResort.id, ...bob.kem.map((k) => k.id)];
  assertEquals(
    new Set(kemIds).size,
    kemIds.length,
    "one-time and last-resort KEM ids are distinct",
  );
  // Rotation keeps the previous signed prekey for late messages.
  const old = bob.signed.id;
  const next = await bob.vault.newSignedPrekey(bob.identity, 10);
  assert(next.id !== old);
  assert(
    bob.vault.signedPrekey(old) !== undefined && bob.vault.signedPrekey(next.id) !== undefined,
  );
  assertEquals(bob.vault.currentSigned, { id: next.id, createdAtMs: 10 });
  const copy = PrekeyVault.fromJSON(JSON.parse(JSON.stringify(bob.vault)));
  assertEquals(copy.toJSON(), bob.vault.toJSON());
  assertEquals(copy.kemPrekey(bob.kem[1]!.id)?.seed, bob.vault.kemPrekey(bob.kem[1]!.id)?.seed);
  const more = await copy.newOneTimePrekeys(bob.identity, 3, 20);
  assertEquals(more.map((k) => k.id), [3, 4, 5], "the id counter survives the round trip");
});

Deno.test("session book: active session first, reinstall replaces, base keys remembered, JSON round-trips", async () => {
  const bob = await device();
  const alice = await generateIdentityKeyPair();
  const bundle = {
    identityKey: bob.identityKey,
    signedPrekey: bob.signed,
    kemPrekey: bob.lastResort,
  };
  const [one, two] = [await initiateSession(alice, bundle), await initiateSession(alice, bundle)];
  const book = new SessionBook();
  book.add("bob", "phone", 7, one);
  book.add("bob", "phone", 7, two);
  const phone = book.get("bob", "phone")!;
  assertEquals(phone.sessions, [two, one]);
  book.promote(phone, one);
  assertEquals(book.get("bob", "phone")!.sessions[0], one);
  assertEquals(book.findByBaseKey(phone, two.baseKey), two);
  book.rememberBaseKey(one.baseKey);
  assert(book.baseKeySeen(one.baseKey) && !book.baseKeySeen(two.baseKey));
  const copy = SessionBook.fromJSON(JSON.parse(JSON.stringify(book)));
  assertEquals(copy.get("bob", "phone")!.sessions.map((s) => s.serialize()), [
    one.serialize(),
    two.serialize(),
  ]);
  assert(copy.baseKeySeen(one.baseKey));
  // A new registration id: the device was reinstalled, old sessions are worthless.
  const three = await initiateSession(alice, bundle);
  book.add("bob", "phone", 8, three);
  assertEquals(book.get("bob", "phone")!.sessions, [three]);
  book.add("bob", "laptop", 1, one);
  assertEquals(book.devicesOf("bob").length, 2);
  assertEquals(book.dropAccount("bob"), 2);
  assertEquals(book.devicesOf("bob"), []);
});
