/**
 * Binds an MLS leaf to the key directory: the account's identity key (the one safety numbers
 * cover) signs, with XEdDSA, the leaf's signature key and the device address its credential
 * names. The signature travels in a leaf-node extension of the key package, so every member
 * can check that a leaf was made by the account it claims, not by another member or the
 * server. Pure: no I/O.
 */
import { xeddsaSign, xeddsaVerify } from "./xeddsa.ts";
import { decodePublicKey, type IdentityKeyPair } from "./keys.ts";

/** Leaf-node extension type of the binding (RFC 9420 private-use range 0xF000-0xFFFF). */
export const LEAF_BINDING_EXTENSION = 0xf0a1;

const LABEL = new TextEncoder().encode("guardyn/mls-leaf-binding/v1");

/** label ‖ u16 len(identity) ‖ identity ‖ signature public key. */
export function leafBindingMessage(identity: string, signaturePublicKey: Uint8Array): Uint8Array {
  const id = new TextEncoder().encode(identity);
  const out = new Uint8Array(LABEL.length + 2 + id.length + signaturePublicKey.length);
  out.set(LABEL);
  new DataView(out.buffer).setUint16(LABEL.length, id.length);
  out.set(id, LABEL.length + 2);
  out.set(signaturePublicKey, LABEL.length + 2 + id.length);
  return out;
}

export function signLeafBinding(
  identityKey: IdentityKeyPair,
  identity: string,
  signaturePublicKey: Uint8Array,
): Uint8Array {
  return xeddsaSign(identityKey.privateKey, leafBindingMessage(identity, signaturePublicKey));
}

/**
 * True when `binding` is the account identity key's signature over this leaf. `identityKey`
 * is the encoded public key the directory serves (33 bytes, type byte first) or the raw 32.
 */
export async function verifyLeafBinding(
  identityKey: Uint8Array,
  identity: string,
  signaturePublicKey: Uint8Array,
  binding: Uint8Array | undefined,
): Promise<boolean> {
  if (!binding) return false;
  let raw: Uint8Array;
  try {
    raw = identityKey.length === 32 ? identityKey : decodePublicKey(identityKey);
  } catch {
    return false;
  }
  return await xeddsaVerify(raw, leafBindingMessage(identity, signaturePublicKey), binding);
}
