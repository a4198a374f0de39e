import { assertEquals, assertNotEquals, assertThrows } from "../tests/assert.ts";
import { sha256 } from "./primitives.ts";
import {
  newPresenceCapability,
  PRESENCE_CAPABILITY_BYTES,
  presenceGrantHash,
} from "./presence_grant.ts";

Deno.test("presence grant: the hash binds the capability to the watcher's account", () => {
  const capability = new Uint8Array(32).fill(1);
  const hash = presenceGrantHash(capability, "bob");
  // Recomputed by hand: label, zero byte, capability, account id.
  const expected = sha256(
    new Uint8Array([
      ...new TextEncoder().encode("guardyn-presence-grant-v1"),
      0,
      ...capability,
      ...new TextEncoder().encode("bob"),
    ]),
  );
  assertEquals(hash, expected);
  assertEquals(hash.byteLength, 32);
  assertNotEquals(presenceGrantHash(capability, "carol"), hash);
  assertNotEquals(presenceGrantHash(new Uint8Array(32).fill(2), "bob"), hash);
  assertThrows(() => presenceGrantHash(new Uint8Array(31), "bob"), RangeError);
  const fresh = newPresenceCapability();
  assertEquals(fresh.byteLength, PRESENCE_CAPABILITY_BYTES);
  assertNotEquals(fresh, newPresenceCapability());
});
