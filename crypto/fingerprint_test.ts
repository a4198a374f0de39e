import {
  compareScannedFingerprint,
  encodeScannableFingerprint,
  FingerprintError,
  safetyNumber,
  type SafetyNumberInput,
} from "./fingerprint.ts";
import { fromHex, toHex } from "./primitives.ts";
import vectors from "./testdata/fingerprint/libsignal_vectors.json" with { type: "json" };

function assertEquals<T>(actual: T, expected: T, what: string): void {
  if (actual !== expected) throw new Error(`${what}: expected ${expected}, got ${actual}`);
}

function assertThrowsCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (error) {
    if (error instanceof FingerprintError && error.code === code) return;
    throw new Error(`expected FingerprintError ${code}, got ${error}`);
  }
  throw new Error(`expected FingerprintError ${code}, nothing thrown`);
}

const alice = fromHex(vectors.aliceIdentityKeyHex);
const bob = fromHex(vectors.bobIdentityKeyHex);

function pair(version: number): [SafetyNumberInput, SafetyNumberInput] {
  return [
    {
      localId: vectors.aliceStableId,
      localIdentityKey: alice,
      remoteId: vectors.bobStableId,
      remoteIdentityKey: bob,
      iterations: vectors.iterations,
      scannableVersion: version,
    },
    {
      localId: vectors.bobStableId,
      localIdentityKey: bob,
      remoteId: vectors.aliceStableId,
      remoteIdentityKey: alice,
      iterations: vectors.iterations,
      scannableVersion: version,
    },
  ];
}

for (const version of [1, 2] as const) {
  Deno.test(`libsignal vectors, scannable version ${version}`, () => {
    const [aliceInput, bobInput] = pair(version);
    const fromAlice = safetyNumber(aliceInput);
    const fromBob = safetyNumber(bobInput);
    assertEquals(fromAlice.displayable, vectors.displayable, "alice displayable");
    assertEquals(fromBob.displayable, vectors.displayable, "bob displayable");
    assertEquals(toHex(fromAlice.scannable), vectors.scannable[version].aliceHex, "alice QR");
    assertEquals(toHex(fromBob.scannable), vectors.scannable[version].bobHex, "bob QR");
    assertEquals(compareScannedFingerprint(fromAlice.scannable, fromBob.scannable), true, "a<-b");
    assertEquals(compareScannedFingerprint(fromBob.scannable, fromAlice.scannable), true, "b<-a");
    // Scanning one's own code must not verify.
    assertEquals(
      compareScannedFingerprint(fromAlice.scannable, fromAlice.scannable),
      false,
      "self",
    );
  });
}

Deno.test("defaults are Signal's: 5200 iterations, scannable version 2", () => {
  const [aliceInput] = pair(2);
  const { iterations: _i, scannableVersion: _v, ...defaults } = aliceInput;
  const result = safetyNumber(defaults);
  assertEquals(result.displayable, vectors.displayable, "displayable");
  assertEquals(toHex(result.scannable), vectors.scannable[2].aliceHex, "scannable");
});

Deno.test("raw 32-byte identity keys get the 0x05 prefix", () => {
  const result = safetyNumber({
    localId: new TextEncoder().encode(vectors.aliceStableId),
    localIdentityKey: alice.subarray(1),
    remoteId: vectors.bobStableId,
    remoteIdentityKey: bob.subarray(1),
  });
  assertEquals(result.displayable, vectors.displayable, "displayable");
});

Deno.test("scannable encoding matches libsignal's fingerprint_encodings", () => {
  const { version, localByte, remoteByte, expectedHex } = vectors.encoding;
  const encoded = encodeScannableFingerprint(
    version,
    new Uint8Array(32).fill(localByte),
    new Uint8Array(32).fill(remoteByte),
  );
  assertEquals(toHex(encoded), expectedHex, "encoding");
});

Deno.test("different keys, ids or one-sided MITM give different numbers", () => {
  const keyA = new Uint8Array(32).fill(1);
  const keyB = new Uint8Array(32).fill(2);
  const keyM = new Uint8Array(32).fill(3);
  const base = safetyNumber({
    localId: "alice",
    localIdentityKey: keyA,
    remoteId: "bob",
    remoteIdentityKey: keyB,
    iterations: 1024,
  });
  const bobView = safetyNumber({
    localId: "bob",
    localIdentityKey: keyB,
    remoteId: "alice",
    remoteIdentityKey: keyA,
    iterations: 1024,
  });
  assertEquals(base.displayable, bobView.displayable, "symmetry");
  assertEquals(base.displayable.length, 60, "length");
  assertEquals(/^\d{60}$/.test(base.displayable), true, "digits only");
  assertEquals(compareScannedFingerprint(base.scannable, bobView.scannable), true, "scan");

  const mitmView = safetyNumber({
    localId: "alice",
    localIdentityKey: keyA,
    remoteId: "bob",
    remoteIdentityKey: keyM,
    iterations: 1024,
  });
  assertEquals(mitmView.displayable === bobView.displayable, false, "mitm displayable");
  assertEquals(compareScannedFingerprint(mitmView.scannable, bobView.scannable), false, "mitm");

  const otherId = safetyNumber({
    localId: "alice2",
    localIdentityKey: keyA,
    remoteId: "bob",
    remoteIdentityKey: keyB,
    iterations: 1024,
  });
  assertEquals(otherId.displayable === base.displayable, false, "id changes number");
  assertEquals(compareScannedFingerprint(otherId.scannable, bobView.scannable), false, "id");
});

Deno.test("version mismatch and malformed scans are clear errors", () => {
  const [v1] = pair(1);
  const [, v2] = pair(2);
  const ours = safetyNumber(v1).scannable;
  const theirs = safetyNumber(v2).scannable;
  assertThrowsCode(() => compareScannedFingerprint(ours, theirs), "version-mismatch");
  assertThrowsCode(() => compareScannedFingerprint(ours, theirs.subarray(0, 20)), "parse");
  assertThrowsCode(() => compareScannedFingerprint(ours, new Uint8Array([0x08, 0x01])), "parse");
  assertThrowsCode(() => compareScannedFingerprint(ours, new Uint8Array(2000)), "parse");
});

Deno.test("bad arguments are rejected", () => {
  const key = new Uint8Array(32);
  const ok = { localId: "a", localIdentityKey: key, remoteId: "b", remoteIdentityKey: key };
  assertThrowsCode(() => safetyNumber({ ...ok, iterations: 1 }), "invalid-argument");
  assertThrowsCode(() => safetyNumber({ ...ok, iterations: 1_000_001 }), "invalid-argument");
  assertThrowsCode(() => safetyNumber({ ...ok, localId: "" }), "invalid-argument");
  assertThrowsCode(
    () => safetyNumber({ ...ok, localIdentityKey: new Uint8Array(33) }),
    "invalid-argument",
  );
  assertThrowsCode(
    () => safetyNumber({ ...ok, remoteIdentityKey: new Uint8Array(31) }),
    "invalid-argument",
  );
});
