import {
  encodePublicKey,
  generateIdentityKeyPair,
  type IdentityKeyPair,
  initiateSession,
} from "../crypto/mod.ts";
import { EnvelopeType } from "../proto/gen/guardyn/v1/messaging.ts";
import { assert, assertEquals } from "../tests/assert.ts";
import type { Api } from "./api.ts";
import { GuardynClientError } from "./errors.ts";
import { ProfileState } from "./profile_state.ts";
import { Sesame } from "./sesame.ts";

const NOW = 1_700_000_000_000;

/** Bob's device, with published-style prekeys, who has verified Alice. */
async function bob() {
  const state = new ProfileState("bob's laptop");
  const identity = await generateIdentityKeyPair();
  state.identity = identity;
  state.account = { accountId: "bob", deviceId: "b1", username: "bob" };
  const bundle = {
    identityKey: encodePublicKey(identity.publicKey),
    signedPrekey: await state.prekeys.newSignedPrekey(identity, NOW),
    oneTimePrekey: (await state.prekeys.newOneTimePrekeys(identity, 1, NOW))[0],
    kemPrekey: await state.prekeys.newLastResortKem(identity, NOW),
  };
  const alice = await generateIdentityKeyPair();
  const aliceKey = encodePublicKey(alice.publicKey);
  state.contacts.observeIdentity("alice", aliceKey, NOW);
  state.contacts.markVerified("alice", true);
  state.sessions.add("alice", "a1", 7, await initiateSession(alice, bundle));
  const identityChanges: Array<[string, boolean]> = [];
  const sesame = new Sesame({
    api: {} as Api,
    state,
    now: () => NOW,
    onSessionStarted: () => {},
    onIdentityChanged: (accountId, wasVerified) => identityChanges.push([accountId, wasVerified]),
  });
  return { state, sesame, bundle, aliceKey, identityChanges };
}

/** A prekey message "from alice/a2" made with someone else's identity key. */
async function handshakeFrom(
  identity: IdentityKeyPair,
  bundle: Awaited<ReturnType<typeof bob>>["bundle"],
) {
  const session = await initiateSession(identity, bundle);
  return await session.encrypt(new TextEncoder().encode("hello"));
}

const envelopeFromAlice = (content: Uint8Array) => ({
  id: "e1",
  seq: 1,
  sender: { accountId: "alice", deviceId: "a2" },
  clientMessageId: "m1",
  type: EnvelopeType.ENVELOPE_TYPE_PREKEY_MESSAGE,
  content,
  serverTimestampMs: NOW,
  ephemeral: false,
  groupId: new Uint8Array(),
});

// Audit finding 1: before the fix, this forged handshake replaced Alice's identity key,
// cleared `verified`, dropped her sessions and fired the identity-changed warning.
Deno.test("sesame: a forged first message changes no trust, no session and warns of nothing", async () => {
  const b = await bob();
  const forged = await handshakeFrom(await generateIdentityKeyPair(), b.bundle);
  forged[forged.length - 1]! ^= 0xff; // garbage ciphertext: the handshake cannot authenticate
  const error = await b.sesame.open(envelopeFromAlice(forged)).then(() => undefined, (e) => e);
  assert(error instanceof GuardynClientError && error.code === "CRYPTO_FAILURE", String(error));
  const alice = b.state.contacts.get("alice")!;
  assertEquals([...alice.identityKey!], [...b.aliceKey]);
  assertEquals([alice.verified, alice.blocked, alice.changedAtMs], [true, false, undefined]);
  assertEquals(b.state.sessions.devicesOf("alice").length, 1);
  assertEquals(b.identityChanges, []);
});

Deno.test("sesame: an authenticated handshake with a new identity key is a change, and warned of", async () => {
  const b = await bob();
  const genuine = await handshakeFrom(await generateIdentityKeyPair(), b.bundle);
  const opened = await b.sesame.open(envelopeFromAlice(genuine));
  assertEquals(new TextDecoder().decode(opened.plaintext), "hello");
  assertEquals(opened.identityChanged, true);
  const alice = b.state.contacts.get("alice")!;
  assertEquals([alice.verified, alice.blocked], [false, true]);
  assertEquals(b.state.sessions.devicesOf("alice").length, 0);
  assertEquals(b.identityChanges, [["alice", true]]);
});
