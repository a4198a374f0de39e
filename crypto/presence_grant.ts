/**
 * Presence grants (proto/guardyn/v1/presence.proto): the owner draws a capability per watcher,
 * sends it inside an end-to-end encrypted message and registers only its grant hash. The hash
 * binds the capability to the watcher's account, so the server can check a read without a list
 * of watchers, and a capability forwarded to someone else opens nothing.
 */

import { concatBytes, randomBytes, sha256 } from "./primitives.ts";

export const PRESENCE_CAPABILITY_BYTES = 32;
const LABEL = new TextEncoder().encode("guardyn-presence-grant-v1\0");

/** A fresh capability for one watcher. */
export function newPresenceCapability(): Uint8Array {
  return randomBytes(PRESENCE_CAPABILITY_BYTES);
}

/** SHA-256("guardyn-presence-grant-v1" || 0x00 || capability || watcher account id). */
export function presenceGrantHash(capability: Uint8Array, watcherAccountId: string): Uint8Array {
  if (capability.byteLength !== PRESENCE_CAPABILITY_BYTES) {
    throw new RangeError(`a presence capability has ${PRESENCE_CAPABILITY_BYTES} bytes`);
  }
  return sha256(concatBytes(LABEL, capability, new TextEncoder().encode(watcherAccountId)));
}
