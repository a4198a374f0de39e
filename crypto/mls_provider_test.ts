import { defaultCryptoProvider, getCiphersuiteFromName } from "ts-mls";
import { MLS_SUITES } from "./mls.ts";
import { guardynCryptoProvider } from "./mls_provider.ts";

function assertBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const same = actual.length === expected.length && actual.every((b, i) => b === expected[i]);
  if (!same) throw new Error(`${what}: outputs differ`);
}

// The tuned provider must compute exactly what ts-mls's WebCrypto provider computes, or
// Guardyn clients would not interoperate with other MLS implementations.
for (const suite of Object.values(MLS_SUITES)) {
  Deno.test(`noble hash/HMAC/HKDF match WebCrypto for ${suite}`, async () => {
    const cs = getCiphersuiteFromName(suite);
    const ours = await guardynCryptoProvider.getCiphersuiteImpl(cs);
    const reference = await defaultCryptoProvider.getCiphersuiteImpl(cs);
    for (const size of [0, 1, 31, 32, 64, 65, 200]) {
      const data = crypto.getRandomValues(new Uint8Array(size));
      const key = crypto.getRandomValues(new Uint8Array(size === 0 ? 1 : size));
      assertBytes(await ours.hash.digest(data), await reference.hash.digest(data), "digest");
      const mac = await reference.hash.mac(key, data);
      assertBytes(await ours.hash.mac(key, data), mac, "mac");
      if (!await ours.hash.verifyMac(key, mac, data)) throw new Error("valid mac refused");
      const bad = mac.slice();
      bad[0]! ^= 1;
      if (await ours.hash.verifyMac(key, bad, data)) throw new Error("bad mac accepted");
      // MLS salts are empty or hash-sized (@hpke/core accepts nothing else).
      const salt = size % 2 === 0
        ? new Uint8Array(0)
        : crypto.getRandomValues(new Uint8Array(ours.kdf.size));
      const prk = await reference.kdf.extract(salt, key);
      assertBytes(await ours.kdf.extract(salt, key), prk, "extract");
      for (const length of [1, 16, 32, 64, 100]) {
        assertBytes(
          await ours.kdf.expand(prk, data, length),
          await reference.kdf.expand(prk, data, length),
          `expand ${length}`,
        );
      }
    }
    if (ours.kdf.size !== reference.kdf.size) throw new Error("kdf size differs");
  });
}
