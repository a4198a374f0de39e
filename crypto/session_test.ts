import fc from "fast-check";
import { assert, assertEquals } from "../tests/assert.ts";
import { expectCode, expectRejectionCode } from "./crypto_test_kit.ts";
import {
  type EcPrekey,
  encodePublicKey,
  generateIdentityKeyPair,
  generateKemPrekeys,
  generateLastResortKemPrekey,
  generateOneTimePrekeys,
  generateSignedPrekey,
  type IdentityKeyPair,
  type KemPrekey,
  toPublicPrekey,
} from "./keys.ts";
import type { CryptoErrorCode } from "./errors.ts";
import { toHex, utf8 } from "./primitives.ts";
import {
  acceptSession,
  deserializeSession,
  initiateSession,
  messageType,
  peekPrekeyMessage,
  type PrekeyStore,
  serializeSession,
  type Session,
} from "./session.ts";
import type { PrekeyBundle } from "./x3dh.ts";

const NOW = 1_700_000_000_000;
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** A device's prekeys with an in-memory store that consumes one-time keys. */
class Device {
  readonly used = new Set<string>();
  consumeCalls = 0;

  private constructor(
    readonly identity: IdentityKeyPair,
    readonly signed: EcPrekey,
    readonly oneTime: EcPrekey[],
    readonly kem: KemPrekey[],
    readonly lastResort: KemPrekey,
  ) {}

  static async create(): Promise<Device> {
    const identity = await generateIdentityKeyPair();
    return new Device(
      identity,
      await generateSignedPrekey(identity, 1),
      await generateOneTimePrekeys(identity, 100, 3),
      await generateKemPrekeys(identity, 200, 3),
      await generateLastResortKemPrekey(identity, 999),
    );
  }

  bundle(index = 0, parts: { oneTime?: boolean; kem?: "one-time" | "last-resort" | "none" } = {}) {
    const kem = parts.kem ?? "one-time";
    const bundle: PrekeyBundle = {
      identityKey: encodePublicKey(this.identity.publicKey),
      signedPrekey: toPublicPrekey(this.signed),
      oneTimePrekey: parts.oneTime === false ? undefined : toPublicPrekey(this.oneTime[index]!),
      kemPrekey: kem === "none"
        ? undefined
        : toPublicPrekey(kem === "last-resort" ? this.lastResort : this.kem[index]!),
    };
    return bundle;
  }

  readonly store: PrekeyStore = {
    signedPrekey: (id) => id === this.signed.id ? this.signed.keyPair : undefined,
    oneTimePrekey: (id) =>
      this.used.has(`ec${id}`) ? undefined : this.oneTime.find((p) => p.id === id)?.keyPair,
    kemPrekey: (id) => {
      if (id === this.lastResort.id) return this.lastResort.keyPair;
      return this.used.has(`kem${id}`) ? undefined : this.kem.find((p) => p.id === id)?.keyPair;
    },
    consumeOneTimePrekeys: ({ oneTimePrekeyId, kemPrekeyId }) => {
      this.consumeCalls++;
      const names = [
        ...(oneTimePrekeyId === undefined ? [] : [`ec${oneTimePrekeyId}`]),
        ...(kemPrekeyId === undefined || kemPrekeyId === this.lastResort.id
          ? []
          : [`kem${kemPrekeyId}`]),
      ];
      if (names.some((name) => this.used.has(name))) return false;
      for (const name of names) this.used.add(name);
      return true;
    },
  };
}

async function established(): Promise<{ alice: Session; bob: Session; bobDevice: Device }> {
  const aliceIdentity = await generateIdentityKeyPair();
  const bobDevice = await Device.create();
  const alice = await initiateSession(aliceIdentity, bobDevice.bundle());
  const first = await alice.encrypt(utf8("hello"));
  const { session: bob } = await acceptSession(bobDevice.identity, first, bobDevice.store, NOW);
  return { alice, bob, bobDevice };
}

Deno.test("session: PQXDH setup, prekey messages until the first reply, then ratchet messages", async () => {
  const aliceIdentity = await generateIdentityKeyPair();
  const bobDevice = await Device.create();
  const alice = await initiateSession(aliceIdentity, bobDevice.bundle());
  assert(alice.hasPendingHandshake);
  const m1 = await alice.encrypt(utf8("one"));
  const m2 = await alice.encrypt(utf8("two"));
  assertEquals([messageType(m1), messageType(m2)], ["prekey", "prekey"]);
  assertEquals(peekPrekeyMessage(m1).identityKey, encodePublicKey(aliceIdentity.publicKey));

  const { session: bob, plaintext } = await acceptSession(
    bobDevice.identity,
    m1,
    bobDevice.store,
    NOW,
  );
  assertEquals(decode(plaintext), "one");
  assertEquals(bob.remoteIdentityKey, encodePublicKey(aliceIdentity.publicKey));
  assertEquals(bob.localIdentityKey, encodePublicKey(bobDevice.identity.publicKey));
  assertEquals(alice.remoteIdentityKey, encodePublicKey(bobDevice.identity.publicKey));
  assertEquals(bob.baseKey, alice.baseKey);
  // The second prekey message carries the same handshake: the existing session decrypts it.
  assertEquals(decode(await bob.decrypt(m2, NOW)), "two");

  const reply = await bob.encrypt(utf8("hi"));
  assertEquals(messageType(reply), "ratchet");
  assertEquals(decode(await alice.decrypt(reply, NOW)), "hi");
  assert(!alice.hasPendingHandshake);
  assertEquals(messageType(await alice.encrypt(utf8("three"))), "ratchet");
});

Deno.test("session: a one-time prekey serves one session only", async () => {
  const bobDevice = await Device.create();
  const alice = await initiateSession(await generateIdentityKeyPair(), bobDevice.bundle(0));
  const carol = await initiateSession(await generateIdentityKeyPair(), bobDevice.bundle(0));
  const fromAlice = await alice.encrypt(utf8("a"));
  const fromCarol = await carol.encrypt(utf8("c"));
  await acceptSession(bobDevice.identity, fromAlice, bobDevice.store, NOW);
  await expectRejectionCode(
    acceptSession(bobDevice.identity, fromAlice, bobDevice.store, NOW),
    "prekey-reused",
  );
  await expectRejectionCode(
    acceptSession(bobDevice.identity, fromCarol, bobDevice.store, NOW),
    "prekey-reused",
  );
});

Deno.test("session: consumption is atomic; a concurrent double use is refused", async () => {
  const bobDevice = await Device.create();
  const alice = await initiateSession(await generateIdentityKeyPair(), bobDevice.bundle(1));
  const message = await alice.encrypt(utf8("a"));
  const results = await Promise.allSettled([
    acceptSession(bobDevice.identity, message, bobDevice.store, NOW),
    acceptSession(bobDevice.identity, message, bobDevice.store, NOW),
  ]);
  assertEquals(results.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
});

Deno.test("session: forged prekey messages consume nothing", async () => {
  const bobDevice = await Device.create();
  const alice = await initiateSession(await generateIdentityKeyPair(), bobDevice.bundle(2));
  const message = await alice.encrypt(utf8("a"));
  const forged = message.slice();
  forged[forged.length - 1]! ^= 1;
  await expectRejectionCode(
    acceptSession(bobDevice.identity, forged, bobDevice.store, NOW),
    "decryption-failed",
  );
  assertEquals(bobDevice.consumeCalls, 0);
  const { plaintext } = await acceptSession(bobDevice.identity, message, bobDevice.store, NOW);
  assertEquals(decode(plaintext), "a");
});

Deno.test("session: unknown prekeys, foreign messages, missing post-quantum keys", async () => {
  const bobDevice = await Device.create();
  const alice = await initiateSession(await generateIdentityKeyPair(), bobDevice.bundle());
  const message = await alice.encrypt(utf8("x"));
  const stores: [PrekeyStore, CryptoErrorCode][] = [
    [{ ...bobDevice.store, signedPrekey: () => undefined }, "unknown-prekey"],
    [{ ...bobDevice.store, oneTimePrekey: () => undefined }, "prekey-reused"],
    [{ ...bobDevice.store, kemPrekey: () => Promise.resolve(undefined) }, "prekey-reused"],
  ];
  for (const [store, code] of stores) {
    await expectRejectionCode(acceptSession(bobDevice.identity, message, store, NOW), code);
  }
  // Same prekey ids, different device: the keys do not match and the message fails to decrypt.
  const stranger = await Device.create();
  await expectRejectionCode(
    acceptSession(stranger.identity, message, stranger.store, NOW),
    "decryption-failed",
  );
  assertEquals(stranger.consumeCalls, 0);
  await expectRejectionCode(
    initiateSession(await generateIdentityKeyPair(), bobDevice.bundle(0, { kem: "none" })),
    "post-quantum-required",
  );
});

Deno.test("session: last-resort KEM key and no one-time key; plain X3DH when allowed", async () => {
  const bobDevice = await Device.create();
  for (let i = 0; i < 2; i++) {
    const bundle = bobDevice.bundle(0, { oneTime: false, kem: "last-resort" });
    const alice = await initiateSession(await generateIdentityKeyPair(), bundle);
    const { plaintext } = await acceptSession(
      bobDevice.identity,
      await alice.encrypt(utf8(`last resort ${i}`)),
      bobDevice.store,
      NOW,
    );
    assertEquals(decode(plaintext), `last resort ${i}`);
  }
  const classic = { requirePostQuantum: false };
  const alice = await initiateSession(
    await generateIdentityKeyPair(),
    bobDevice.bundle(2, { kem: "none" }),
    classic,
  );
  const message = await alice.encrypt(utf8("classic"));
  await expectRejectionCode(
    acceptSession(bobDevice.identity, message, bobDevice.store, NOW),
    "post-quantum-required",
  );
  const accepted = await acceptSession(bobDevice.identity, message, bobDevice.store, NOW, classic);
  assertEquals(decode(accepted.plaintext), "classic");
});

Deno.test("session: a prekey message of another handshake is a session mismatch", async () => {
  const { bob, bobDevice } = await established();
  const other = await initiateSession(await generateIdentityKeyPair(), bobDevice.bundle(1));
  await expectRejectionCode(bob.decrypt(await other.encrypt(utf8("x")), NOW), "session-mismatch");
  expectCode(() => messageType(Uint8Array.of(9)), "unsupported-version");
});

Deno.test("session: concurrent encrypt and decrypt calls are serialized", async () => {
  const { alice, bob } = await established();
  await alice.decrypt(await bob.encrypt(utf8("start")), NOW);
  const outgoing = await Promise.all(
    Array.from({ length: 10 }, (_, i) => alice.encrypt(utf8(`m${i}`))),
  );
  const received = await Promise.all(outgoing.map((m) => bob.decrypt(m, NOW)));
  assertEquals(received.map(decode), Array.from({ length: 10 }, (_, i) => `m${i}`));
  const replies = await Promise.all([bob.encrypt(utf8("r0")), bob.encrypt(utf8("r1"))]);
  const [r1, r0] = await Promise.all([
    alice.decrypt(replies[1]!, NOW),
    alice.decrypt(replies[0]!, NOW),
  ]);
  assertEquals([decode(r0), decode(r1)], ["r0", "r1"]);
});

Deno.test("session: serialization restores exactly, at every step of a conversation", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.boolean(), { minLength: 1, maxLength: 12 }), async (turns) => {
      let { alice, bob } = await established();
      const check = (session: Session) => {
        const bytes = serializeSession(session);
        const restored = deserializeSession(bytes);
        assertEquals(toHex(serializeSession(restored)), toHex(bytes));
        assertEquals(restored.hasPendingHandshake, session.hasPendingHandshake);
        return restored;
      };
      alice = check(alice);
      bob = check(bob);
      for (const [i, aliceSends] of turns.entries()) {
        const [from, to] = aliceSends ? [alice, bob] : [bob, alice];
        const plaintext = await to.decrypt(await from.encrypt(utf8(`${i}`)), NOW);
        assertEquals(decode(plaintext), `${i}`);
        alice = check(alice);
        bob = check(bob);
      }
    }),
    { numRuns: 15 },
  );
});

Deno.test("session: corrupted serialized sessions are refused", async () => {
  const { alice } = await established();
  const bytes = serializeSession(alice);
  expectCode(() => deserializeSession(bytes.subarray(0, bytes.length - 3)), "malformed");
  expectCode(
    () => deserializeSession(Uint8Array.of(2, ...bytes.subarray(1))),
    "unsupported-version",
  );
  const badRole = bytes.slice();
  badRole[1] = 7;
  expectCode(() => deserializeSession(badRole), "malformed");
});
