/**
 * Prekey directory throughput on the embedded store: `deno bench -A services/store/sqlite/`.
 * claimBundle/s = 1e9 / time per iteration (one bundle per iteration).
 */
import { join } from "node:path";
import type { OneTimePrekey } from "../auth_ports.ts";
import type { DeviceRef } from "../ports.ts";
import { openSqliteStore } from "./sqlite_store.ts";
import { SQLITE_PORTS } from "../../runtime/store_ports.ts";

const dir = await Deno.makeTempDir({ prefix: "guardyn-auth-bench-" });
const store = await openSqliteStore(join(dir, "bench.db"), { ports: SQLITE_PORTS });
globalThis.addEventListener("unload", () => {
  store.close();
  Deno.removeSync(dir, { recursive: true });
});

const KEYS_PER_UPLOAD = 100;
const devices: DeviceRef[] = Array.from({ length: 100 }, (_, i) => ({
  accountId: `account-${i}`,
  deviceId: "d1",
}));
const ecKey = (keyId: number): OneTimePrekey => ({ keyId, publicKey: new Uint8Array(33).fill(5) });
/** Kyber-sized one-time keys: a bundle carries 1569 bytes of KEM key and a signature. */
const kemKey = (keyId: number): OneTimePrekey => ({
  keyId,
  publicKey: new Uint8Array(1569).fill(8),
  signature: new Uint8Array(64).fill(9),
});
let nextKeyId = 1;

async function refill(device: DeviceRef, replace = false): Promise<void> {
  const ids = Array.from({ length: KEYS_PER_UPLOAD }, () => nextKeyId++);
  await store.auth.prekeys.addOneTime(device, "ec", ids.map(ecKey), 1000, replace);
  await store.auth.prekeys.addOneTime(device, "kem", ids.map(kemKey), 1000, replace);
}

for (const device of devices) {
  await store.auth.prekeys.setSignedPrekey(device, {
    keyId: 1,
    publicKey: new Uint8Array(33).fill(1),
    signature: new Uint8Array(64).fill(2),
  }, Date.now());
  await store.auth.prekeys.setLastResortKem(device, kemKey(0));
  await refill(device);
}
const left = new Map(devices.map((device) => [device, KEYS_PER_UPLOAD]));
let n = 0;

Deno.bench("sqlite auth: claimBundle with one-time EC and KEM keys", async (b) => {
  const device = devices[n++ % devices.length]!;
  if (left.get(device) === 0) {
    await refill(device);
    left.set(device, KEYS_PER_UPLOAD);
  }
  b.start();
  const bundle = await store.auth.prekeys.claimBundle(device);
  b.end();
  left.set(device, left.get(device)! - 1);
  if (!bundle.oneTimePrekey || bundle.kemPrekey?.lastResort !== false) {
    throw new Error("the bench ran out of one-time keys");
  }
});

const exhausted: DeviceRef = { accountId: "account-exhausted", deviceId: "d1" };
await store.auth.prekeys.setLastResortKem(exhausted, kemKey(0));

Deno.bench("sqlite auth: claimBundle falling back to the last-resort KEM key", async () => {
  await store.auth.prekeys.claimBundle(exhausted);
});

const popular: DeviceRef = { accountId: "account-popular", deviceId: "d1" };

Deno.bench("sqlite auth: 100 concurrent claimBundle calls on one device", async (b) => {
  await refill(popular, true);
  b.start();
  await Promise.all(Array.from({ length: 100 }, () => store.auth.prekeys.claimBundle(popular)));
  b.end();
});
