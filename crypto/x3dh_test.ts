import { numberToBytesLE } from "@noble/curves/utils.js";
import { assert, assertEquals } from "../tests/assert.ts";
import { expectCode, expectRejectionCode } from "./crypto_test_kit.ts";
import { ByteReader, ByteWriter } from "./codec.ts";
import {
  decodePublicKey,
  type EcPrekey,
  encodePublicKey,
  generateIdentityKeyPair,
  generateKemPrekeys,
  generateOneTimePrekeys,
  generateSignedPrekey,
  type IdentityKeyPair,
  type KemPrekey,
  toPublicPrekey,
} from "./keys.ts";
import { concatBytes, hkdfSha256, mlKemDecapsulate, utf8, x25519 } from "./primitives.ts";
import {
  decodeInitialHandshake,
  encodeInitialHandshake,
  type InitialHandshake,
  initiateHandshake,
  PQXDH_INFO,
  type PrekeyBundle,
  respondToHandshake,
  X3DH_INFO,
} from "./x3dh.ts";

interface Bob {
  identity: IdentityKeyPair;
  signed: EcPrekey;
  oneTime: EcPrekey;
  kem: KemPrekey;
}

async function makeBob(): Promise<Bob> {
  const identity = await generateIdentityKeyPair();
  return {
    identity,
    signed: await generateSignedPrekey(identity, 1),
    oneTime: (await generateOneTimePrekeys(identity, 10, 1))[0]!,
    kem: (await generateKemPrekeys(identity, 20, 1))[0]!,
  };
}

function bundleOf(bob: Bob, parts: { oneTime?: boolean; kem?: boolean } = {}): PrekeyBundle {
  return {
    identityKey: encodePublicKey(bob.identity.publicKey),
    signedPrekey: toPublicPrekey(bob.signed),
    oneTimePrekey: parts.oneTime === false ? undefined : toPublicPrekey(bob.oneTime),
    kemPrekey: parts.kem === false ? undefined : toPublicPrekey(bob.kem),
  };
}

/** SK recomputed from the spec's formula with Bob's keys, independently of x3dh.ts. */
async function specSecret(bob: Bob, initial: InitialHandshake): Promise<Uint8Array> {
  const identityA = decodePublicKey(initial.identityKey);
  const ephemeralA = decodePublicKey(initial.baseKey);
  const parts = [
    new Uint8Array(32).fill(0xff),
    await x25519(bob.signed.keyPair.privateKey, identityA),
    await x25519(bob.identity.privateKey, ephemeralA),
    await x25519(bob.signed.keyPair.privateKey, ephemeralA),
  ];
  if (initial.oneTimePrekeyId !== undefined) {
    parts.push(await x25519(bob.oneTime.keyPair.privateKey, ephemeralA));
  }
  if (initial.kemCiphertext !== undefined) {
    parts.push(await mlKemDecapsulate(bob.kem.keyPair.seed, initial.kemCiphertext));
  }
  const info = initial.kemCiphertext ? PQXDH_INFO : X3DH_INFO;
  return hkdfSha256(concatBytes(...parts), new Uint8Array(32), utf8(info), 32);
}

for (const oneTime of [true, false]) {
  for (const kem of [true, false]) {
    const name = `${kem ? "PQXDH" : "X3DH"} ${oneTime ? "with" : "without"} one-time prekey`;
    Deno.test(`${name}: both sides derive the spec's SK and AD`, async () => {
      const alice = await generateIdentityKeyPair();
      const bob = await makeBob();
      const options = { requirePostQuantum: kem };
      const sent = await initiateHandshake(alice, bundleOf(bob, { oneTime, kem }), options);
      assertEquals(sent.initial.oneTimePrekeyId, oneTime ? 10 : undefined);
      assertEquals(sent.initial.kemPrekeyId, kem ? 20 : undefined);
      assertEquals(sent.theirSignedPrekey, bob.signed.keyPair.publicKey);
      const received = await respondToHandshake(bob.identity, sent.initial, {
        signedPrekey: bob.signed.keyPair,
        oneTimePrekey: oneTime ? bob.oneTime.keyPair : undefined,
        kemPrekey: kem ? bob.kem.keyPair : undefined,
      }, options);
      assertEquals(received.sharedSecret, sent.sharedSecret);
      assertEquals(sent.sharedSecret, await specSecret(bob, sent.initial));
      const ad = concatBytes(
        encodePublicKey(alice.publicKey),
        encodePublicKey(bob.identity.publicKey),
      );
      assertEquals(sent.associatedData, ad);
      assertEquals(received.associatedData, ad);
    });
  }
}

Deno.test("handshake: a fresh ephemeral key, hence a fresh secret, every time", async () => {
  const alice = await generateIdentityKeyPair();
  const bob = await makeBob();
  const first = await initiateHandshake(alice, bundleOf(bob));
  const second = await initiateHandshake(alice, bundleOf(bob));
  assert(first.initial.baseKey.some((byte, i) => byte !== second.initial.baseKey[i]));
  assert(first.sharedSecret.some((byte, i) => byte !== second.sharedSecret[i]));
});

Deno.test("handshake: bad signed, one-time or KEM prekey signatures are rejected", async () => {
  const alice = await generateIdentityKeyPair();
  const bob = await makeBob();
  const mallory = await makeBob();
  const good = bundleOf(bob);
  const flip = (bytes: Uint8Array) => {
    const copy = bytes.slice();
    copy[10]! ^= 1;
    return copy;
  };
  const variants: PrekeyBundle[] = [
    {
      ...good,
      signedPrekey: { ...good.signedPrekey, signature: flip(good.signedPrekey.signature) },
    },
    { ...good, signedPrekey: toPublicPrekey(mallory.signed) },
    { ...good, oneTimePrekey: toPublicPrekey(mallory.oneTime) },
    { ...good, kemPrekey: toPublicPrekey(mallory.kem) },
    { ...good, kemPrekey: { ...good.kemPrekey!, publicKey: flip(good.kemPrekey!.publicKey) } },
    { ...good, identityKey: encodePublicKey(mallory.identity.publicKey) },
  ];
  for (const bundle of variants) {
    await expectRejectionCode(initiateHandshake(alice, bundle), "invalid-signature");
  }
});

Deno.test("handshake: low-order keys are rejected before any DH", async () => {
  const alice = await generateIdentityKeyPair();
  const bob = await makeBob();
  const good = bundleOf(bob);
  const lowOrder = Uint8Array.of(0x05, ...numberToBytesLE(1n, 32));
  await expectRejectionCode(
    initiateHandshake(alice, {
      ...good,
      signedPrekey: { ...good.signedPrekey, publicKey: lowOrder },
    }),
    "invalid-key",
  );
  await expectRejectionCode(
    initiateHandshake(alice, { ...good, identityKey: lowOrder }),
    "invalid-key",
  );
  const { initial } = await initiateHandshake(alice, good);
  await expectRejectionCode(
    respondToHandshake(bob.identity, { ...initial, baseKey: lowOrder }, {
      signedPrekey: bob.signed.keyPair,
      oneTimePrekey: bob.oneTime.keyPair,
      kemPrekey: bob.kem.keyPair,
    }),
    "invalid-key",
  );
});

Deno.test("handshake: post-quantum is required unless explicitly waived", async () => {
  const alice = await generateIdentityKeyPair();
  const bob = await makeBob();
  await expectRejectionCode(
    initiateHandshake(alice, bundleOf(bob, { kem: false })),
    "post-quantum-required",
  );
  const { initial } = await initiateHandshake(alice, bundleOf(bob, { kem: false }), {
    requirePostQuantum: false,
  });
  await expectRejectionCode(
    respondToHandshake(bob.identity, initial, {
      signedPrekey: bob.signed.keyPair,
      oneTimePrekey: bob.oneTime.keyPair,
    }),
    "post-quantum-required",
  );
});

Deno.test("initial handshake: encoding round trip and malformed input", async () => {
  const alice = await generateIdentityKeyPair();
  const bob = await makeBob();
  for (const parts of [{}, { oneTime: false }, { kem: false }, { oneTime: false, kem: false }]) {
    const { initial } = await initiateHandshake(alice, bundleOf(bob, parts), {
      requirePostQuantum: false,
    });
    const writer = new ByteWriter();
    encodeInitialHandshake(initial, writer);
    const bytes = writer.finish();
    const reader = new ByteReader(bytes, "test");
    assertEquals(decodeInitialHandshake(reader), initial);
    reader.end();
    expectCode(
      () => decodeInitialHandshake(new ByteReader(bytes.subarray(0, bytes.length - 1), "t")),
      "malformed",
    );
    const badFlags = bytes.slice();
    badFlags[70] = 0x80; // the flags byte follows two 33-byte keys and a u32
    expectCode(() => decodeInitialHandshake(new ByteReader(badFlags, "t")), "malformed");
  }
});
