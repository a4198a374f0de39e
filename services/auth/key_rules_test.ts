import * as grpc from "@grpc/grpc-js";
import {
  encodePublicKey,
  generateIdentityKeyPair,
  generateLastResortKemPrekey,
  generateSignedPrekey,
  toPublicPrekey,
} from "../../crypto/keys.ts";
import { generateKeyPackage } from "../../crypto/mls.ts";
import { assert, assertEquals, captureError } from "../../tests/assert.ts";
import { GuardynError } from "../platform/errors.ts";
import {
  bundleOf,
  checkClaimCounts,
  checkEcPublicKey,
  checkKemPublicKey,
  checkKeyId,
  checkKeyPackages,
  checkOneTimePrekeys,
  checkRegistrationId,
  checkSignedPrekey,
  checkSuite,
  KEY_ID_MAX,
} from "./key_rules.ts";

/** What a promise rejected with (undefined when it resolved). */
const rejection = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(() => undefined, (error) => error);

/** The status, reason and message a rule threw. */
function refusal(fn: () => unknown): [grpc.status, string, string] {
  const error = captureError(fn);
  assert(error instanceof GuardynError, String(error));
  return [error.code, error.reason, error.message];
}

Deno.test("key rules: key ids, registration ids and suites are bounded", () => {
  assertEquals(checkKeyId(1, "k"), 1);
  assertEquals(checkKeyId(KEY_ID_MAX, "k"), KEY_ID_MAX);
  for (const bad of [0, -1, KEY_ID_MAX + 1, 1.5]) {
    assertEquals(refusal(() => checkKeyId(bad, "prekeys[0].key_id")), [
      grpc.status.INVALID_ARGUMENT,
      "INVALID_ARGUMENT",
      `prekeys[0].key_id must be in 1..${KEY_ID_MAX}`,
    ]);
  }
  assertEquals(checkRegistrationId(2_147_483_647), 2_147_483_647);
  assertEquals(
    refusal(() => checkRegistrationId(0))[2],
    "registration_id must be in 1..2147483647",
  );
  assertEquals(checkSuite(1), 1);
  assertEquals(checkSuite(83), 83);
  assertEquals(refusal(() => checkSuite(2))[2], "cipher_suite must be one of 1, 83");
});

Deno.test("key rules: EC keys are 33 bytes that decode; KEM keys carry the ML-KEM type byte", async () => {
  const identity = await generateIdentityKeyPair();
  const encoded = encodePublicKey(identity.publicKey);
  assertEquals(checkEcPublicKey(encoded, "identity_key"), encoded);
  assertEquals(
    refusal(() => checkEcPublicKey(encoded.slice(1), "identity_key"))[2],
    "identity_key must be 33 bytes",
  );
  const wrongType = encoded.slice();
  wrongType[0] = 0x07;
  assertEquals(refusal(() => checkEcPublicKey(wrongType, "identity_key"))[1], "INVALID_ARGUMENT");
  const kem = toPublicPrekey(await generateLastResortKemPrekey(identity, 7));
  assertEquals(checkKemPublicKey(kem.publicKey, "k"), kem.publicKey);
  const notKem = kem.publicKey.slice();
  notKem[0] = 0x08;
  assertEquals(
    refusal(() => checkKemPublicKey(notKem, "k"))[2],
    "k must be an encoded ML-KEM-1024 key (type byte 0x0a)",
  );
});

Deno.test("key rules: a signed prekey must be signed by the account identity key", async () => {
  const identity = await generateIdentityKeyPair();
  const other = await generateIdentityKeyPair();
  const identityKey = encodePublicKey(identity.publicKey);
  const signed = toPublicPrekey(await generateSignedPrekey(identity, 5));
  const wire = { keyId: signed.id, publicKey: signed.publicKey, signature: signed.signature };
  const checked = await checkSignedPrekey(identityKey, wire, "ec", "signed_prekey");
  assertEquals(checked.keyId, 5);
  const error = await rejection(
    checkSignedPrekey(encodePublicKey(other.publicKey), wire, "ec", "signed_prekey"),
  );
  assert(error instanceof GuardynError && error.reason === "INVALID_SIGNATURE", String(error));
  const forged = wire.signature.slice();
  forged[10]! ^= 1;
  const tampered = await rejection(
    checkSignedPrekey(identityKey, { ...wire, signature: forged }, "ec", "signed_prekey"),
  );
  assert(tampered instanceof GuardynError && tampered.reason === "INVALID_SIGNATURE");
  const missing = await rejection(checkSignedPrekey(identityKey, undefined, "ec", "signed_prekey"));
  assertEquals((missing as Error).message, "signed_prekey is required");
});

Deno.test("key rules: one-time prekey uploads are counted, unique and well formed", async () => {
  const identity = await generateIdentityKeyPair();
  const key = encodePublicKey(identity.publicKey);
  assertEquals(checkOneTimePrekeys([{ keyId: 1, publicKey: key }], 10).length, 1);
  assertEquals(refusal(() => checkOneTimePrekeys([], 10))[2], "prekeys: 1..10 keys per upload");
  const eleven = Array.from({ length: 11 }, (_, i) => ({ keyId: i + 1, publicKey: key }));
  assertEquals(refusal(() => checkOneTimePrekeys(eleven, 10))[2], "prekeys: 1..10 keys per upload");
  assertEquals(
    refusal(() =>
      checkOneTimePrekeys([{ keyId: 1, publicKey: key }, { keyId: 1, publicKey: key }], 10)
    )[2],
    "prekeys: key ids must be unique",
  );
});

Deno.test("key rules: key packages name the uploading device, use the suite and are distinct", async () => {
  const own = (await generateKeyPackage("acct:dev")).keyPackage;
  const foreign = (await generateKeyPackage("acct:other")).keyPackage;
  assertEquals(checkKeyPackages([own], 10, 1, "acct:dev").length, 1);
  assertEquals(
    refusal(() => checkKeyPackages([foreign], 10, 1, "acct:dev"))[2],
    'key_packages[0]: credential identity must be "acct:dev"',
  );
  assertEquals(
    refusal(() => checkKeyPackages([own], 10, 83, "acct:dev"))[2].includes("not 83"),
    true,
  );
  assertEquals(
    refusal(() => checkKeyPackages([own, own], 10, 1, "acct:dev"))[2],
    "key_packages must be distinct",
  );
  assertEquals(
    refusal(() => checkKeyPackages([own, own], 1, 1, "acct:dev"))[2],
    "key_packages: at most 1 per upload",
  );
  assert(
    refusal(() => checkKeyPackages([new Uint8Array([1, 2, 3])], 10, 1, "acct:dev"))[2]
      .startsWith("key_packages[0] is not an MLS KeyPackage"),
  );
});

Deno.test("key rules: claims name 1..50 accounts and at most 100 devices", () => {
  checkClaimCounts(50, 100);
  assertEquals(refusal(() => checkClaimCounts(51, 0))[2], "account_ids: at most 50");
  assertEquals(refusal(() => checkClaimCounts(0, 101))[2], "devices: at most 100");
  assertEquals(refusal(() => checkClaimCounts(0, 0))[2], "name at least one account or device");
});

Deno.test("key rules: a bundle says when one-time keys ran out", () => {
  const signedPrekey = { keyId: 1, publicKey: new Uint8Array(33), signature: new Uint8Array(64) };
  const device = { id: "d1", registrationId: 9 };
  const full = bundleOf(device, {
    signedPrekey,
    oneTimePrekey: { keyId: 2, publicKey: new Uint8Array(33) },
    kemPrekey: {
      keyId: 3,
      publicKey: new Uint8Array(1569),
      signature: new Uint8Array(64),
      lastResort: false,
    },
  });
  assertEquals([full.deviceId, full.registrationId, full.oneTimePrekeysExhausted], [
    "d1",
    9,
    false,
  ]);
  assertEquals(full.oneTimePrekey?.keyId, 2);
  const drained = bundleOf(device, {
    signedPrekey,
    kemPrekey: {
      keyId: 4,
      publicKey: new Uint8Array(1569),
      signature: new Uint8Array(64),
      lastResort: true,
    },
  });
  assertEquals([
    drained.oneTimePrekey,
    drained.kyberPrekeyLastResort,
    drained.oneTimePrekeysExhausted,
  ], [
    undefined,
    true,
    true,
  ]);
});
