/** The precomputed-key HMAC and HKDF helpers equal the plain RFC 2104 / RFC 5869 functions. */
import fc from "fast-check";
import { assertEquals } from "../tests/assert.ts";
import {
  hkdfSha256,
  hkdfSha256WithFixedSalt,
  hmacSha256,
  hmacSha256Pair,
  hmacSha256WithFixedKey,
} from "./primitives.ts";

const bytes = (max: number) => fc.uint8Array({ minLength: 0, maxLength: max });

Deno.test("hmacSha256Pair equals two separate HMACs under the same key", () => {
  fc.assert(
    fc.property(bytes(100), bytes(80), bytes(80), (key, first, second) => {
      assertEquals(hmacSha256Pair(key, first, second), [
        hmacSha256(key, first),
        hmacSha256(key, second),
      ]);
    }),
    { numRuns: 200 },
  );
});

Deno.test("hmacSha256WithFixedKey equals HMAC, and reuse does not leak state between calls", () => {
  fc.assert(
    fc.property(bytes(100), fc.array(bytes(120), { maxLength: 5 }), (key, messages) => {
      const mac = hmacSha256WithFixedKey(key);
      for (const message of messages) assertEquals(mac(message), hmacSha256(key, message));
    }),
    { numRuns: 100 },
  );
});

Deno.test("hkdfSha256WithFixedSalt equals HKDF for any key material and length", () => {
  fc.assert(
    fc.property(
      bytes(64),
      bytes(40),
      fc.array(fc.tuple(bytes(64), fc.integer({ min: 1, max: 200 })), { maxLength: 4 }),
      (salt, info, inputs) => {
        const derive = hkdfSha256WithFixedSalt(salt, info);
        for (const [ikm, length] of inputs) {
          assertEquals(derive(ikm, length), hkdfSha256(ikm, salt, info, length));
        }
      },
    ),
    { numRuns: 100 },
  );
});
