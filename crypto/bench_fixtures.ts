/** A device with prekeys for benchmarks; its store never runs out of one-time keys. */
import {
  encodePublicKey,
  generateIdentityKeyPair,
  generateKemPrekeys,
  generateOneTimePrekeys,
  generateSignedPrekey,
  type IdentityKeyPair,
  toPublicPrekey,
} from "./keys.ts";
import type { PrekeyStore } from "./session.ts";
import type { PrekeyBundle } from "./x3dh.ts";

export interface BenchDevice {
  identity: IdentityKeyPair;
  bundle: PrekeyBundle;
  store: PrekeyStore;
}

/**
 * One signed, one-time and KEM prekey each. The store hands the same one-time keys out again
 * (consumption always succeeds), so a benchmark can run any number of handshakes: the
 * cryptographic work per handshake is the same as with fresh keys.
 */
export async function benchBundle(): Promise<BenchDevice> {
  const identity = await generateIdentityKeyPair();
  const signed = await generateSignedPrekey(identity, 1);
  const [oneTime] = await generateOneTimePrekeys(identity, 2, 1);
  const [kem] = await generateKemPrekeys(identity, 3, 1);
  return {
    identity,
    bundle: {
      identityKey: encodePublicKey(identity.publicKey),
      signedPrekey: toPublicPrekey(signed),
      oneTimePrekey: toPublicPrekey(oneTime!),
      kemPrekey: toPublicPrekey(kem!),
    },
    store: {
      signedPrekey: () => signed.keyPair,
      oneTimePrekey: () => oneTime!.keyPair,
      kemPrekey: () => kem!.keyPair,
      consumeOneTimePrekeys: () => true,
    },
  };
}
