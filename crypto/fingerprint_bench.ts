import { compareScannedFingerprint, safetyNumber } from "./fingerprint.ts";

const localIdentityKey = crypto.getRandomValues(new Uint8Array(32));
const remoteIdentityKey = crypto.getRandomValues(new Uint8Array(32));
const input = { localId: "alice", localIdentityKey, remoteId: "bob", remoteIdentityKey };
const ours = safetyNumber(input).scannable;
const theirs = safetyNumber({
  localId: "bob",
  localIdentityKey: remoteIdentityKey,
  remoteId: "alice",
  remoteIdentityKey: localIdentityKey,
}).scannable;

Deno.bench("safety number (5200 iterations, both sides)", { group: "fingerprint" }, () => {
  safetyNumber(input);
});

Deno.bench("compare scanned fingerprint", { group: "fingerprint" }, () => {
  if (!compareScannedFingerprint(ours, theirs)) throw new Error("fingerprints must match");
});
