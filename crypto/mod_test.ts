import { assertEquals } from "../tests/assert.ts";
import {
  acceptSession,
  encodePublicKey,
  generateIdentityKeyPair,
  generateLastResortKemPrekey,
  generateSignedPrekey,
  initiateSession,
  safetyNumber,
  toPublicPrekey,
} from "./mod.ts";

Deno.test("crypto/mod.ts: a PQXDH session and a safety number through the public entry point", async () => {
  const alice = await generateIdentityKeyPair();
  const bob = await generateIdentityKeyPair();
  const signed = await generateSignedPrekey(bob, 1);
  const lastResort = await generateLastResortKemPrekey(bob, 2);
  const bobKey = encodePublicKey(bob.publicKey);
  const session = await initiateSession(alice, {
    identityKey: bobKey,
    signedPrekey: toPublicPrekey(signed),
    kemPrekey: toPublicPrekey(lastResort),
  });
  const hello = new TextEncoder().encode("hello bob");
  const first = await session.encrypt(hello);
  const accepted = await acceptSession(bob, first, {
    signedPrekey: (id) => (id === 1 ? signed.keyPair : undefined),
    oneTimePrekey: () => undefined,
    kemPrekey: (id) => (id === 2 ? lastResort.keyPair : undefined),
    consumeOneTimePrekeys: () => true,
  }, Date.now());
  assertEquals(new TextDecoder().decode(accepted.plaintext), "hello bob");
  const reply = await accepted.session.encrypt(new TextEncoder().encode("hi alice"));
  assertEquals(new TextDecoder().decode(await session.decrypt(reply, Date.now())), "hi alice");

  const aliceKey = encodePublicKey(alice.publicKey);
  const seenByAlice = safetyNumber({
    localId: "alice",
    localIdentityKey: aliceKey,
    remoteId: "bob",
    remoteIdentityKey: bobKey,
  });
  const seenByBob = safetyNumber({
    localId: "bob",
    localIdentityKey: bobKey,
    remoteId: "alice",
    remoteIdentityKey: aliceKey,
  });
  assertEquals(seenByAlice.displayable, seenByBob.displayable);
  assertEquals(seenByAlice.displayable.length, 60);
});
