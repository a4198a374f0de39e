import { assertEquals } from "../tests/assert.ts";
import { encodePublicKey, generateIdentityKeyPair } from "../crypto/mod.ts";
import {
  formatLinkCode,
  newLinkKeyPair,
  openProvisioning,
  parseLinkCode,
  type ProvisioningSecrets,
  sealProvisioning,
} from "./provisioning.ts";
import { errorCode } from "./test_support.ts";

async function secrets(): Promise<ProvisioningSecrets> {
  const identity = await generateIdentityKeyPair();
  const friend = await generateIdentityKeyPair();
  return {
    accountId: "account-1",
    username: "alice",
    identity,
    contacts: [
      {
        accountId: "account-2",
        username: "bob",
        identityKey: encodePublicKey(friend.publicKey),
        verified: true,
      },
      { accountId: "account-3", verified: false },
    ],
  };
}

Deno.test("provisioning: the link code round-trips; bad codes are refused", async () => {
  const device = await newLinkKeyPair();
  const code = formatLinkCode({
    sessionId: "0b6a3f2e-1c1d-4a5b-9e8f-123456789abc",
    publicKey: device.publicKey,
  });
  const parsed = parseLinkCode(` ${code}\n`);
  assertEquals(parsed.sessionId, "0b6a3f2e-1c1d-4a5b-9e8f-123456789abc");
  assertEquals(parsed.publicKey, device.publicKey);
  for (
    const bad of [
      "",
      "gdnlink2.a.b",
      "gdnlink1.a",
      "gdnlink1.bad id.AAAA",
      "gdnlink1.s.AAAA",
      `${code}.x`,
    ]
  ) {
    assertEquals(await errorCode(() => parseLinkCode(bad)), "BAD_LINK_CODE", bad);
  }
});

Deno.test("provisioning: only the device that showed the code, for that session, opens the blob", async () => {
  const device = await newLinkKeyPair();
  const sessionId = "session-1";
  const original = await secrets();
  const blob = await sealProvisioning({ sessionId, publicKey: device.publicKey }, original);
  const opened = await openProvisioning(sessionId, device, blob);
  assertEquals(opened.accountId, original.accountId);
  assertEquals(opened.username, "alice");
  assertEquals(opened.identity.privateKey, original.identity.privateKey);
  assertEquals(opened.contacts, [
    { ...original.contacts[0]!, identityKey: original.contacts[0]!.identityKey },
    { accountId: "account-3", username: undefined, identityKey: undefined, verified: false },
  ]);
  // Another session id (the server relabels the blob), another device, a flipped bit: refused.
  assertEquals(await errorCode(() => openProvisioning("session-2", device, blob)), "BAD_LINK_CODE");
  assertEquals(
    await errorCode(async () => openProvisioning(sessionId, await newLinkKeyPair(), blob)),
    "BAD_LINK_CODE",
  );
  const tampered = blob.slice();
  tampered[tampered.length - 1]! ^= 1;
  assertEquals(
    await errorCode(() => openProvisioning(sessionId, device, tampered)),
    "BAD_LINK_CODE",
  );
  assertEquals(
    await errorCode(() => openProvisioning(sessionId, device, blob.slice(0, 20))),
    "BAD_LINK_CODE",
  );
  // Each seal uses a fresh ephemeral key and nonce.
  const again = await sealProvisioning({ sessionId, publicKey: device.publicKey }, original);
  assertEquals(again.length, blob.length);
  assertEquals(again.slice(1, 33).toString() === blob.slice(1, 33).toString(), false);
});
