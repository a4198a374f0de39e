/**
 * Safety numbers, byte-for-byte compatible with libsignal's NumericFingerprintGenerator
 * (rust/protocol/src/fingerprint.rs).
 *
 * Each side's fingerprint is an iterated SHA-512:
 *   h0 = SHA-512(0x0000 || identityKey || stableId || identityKey)
 *   hi = SHA-512(h(i-1) || identityKey)          for i = 1 .. iterations-1
 * The first 30 bytes become six 5-digit groups (each 5-byte big-endian integer mod 100000).
 * The 60-digit display string is the two 30-digit halves in ascending order, so both parties
 * see the same digits. The scannable form is the protobuf `CombinedFingerprints` message
 * carrying the first 32 bytes of each fingerprint.
 *
 * Stable identifier in Guardyn: the UTF-8 bytes of the account id (the user's account
 * identifier, not a device id), so the number changes only when the identity key changes.
 * Identity keys are libsignal-serialized (0x05 || 32-byte Curve25519 public key); a raw 32-byte
 * key is accepted and given the 0x05 prefix.
 */
import { sha512 } from "@noble/hashes/sha2.js";

/** Iteration count used by Signal clients today. */
export const DEFAULT_ITERATIONS = 5200;
/** Scannable (QR) fingerprint version used by Signal clients today. */
export const DEFAULT_SCANNABLE_VERSION = 2;
/** Upper bound accepted by libsignal. */
export const MAX_ITERATIONS = 1_000_000;
/** Longest stable identifier we accept (account ids are far shorter). */
export const MAX_STABLE_ID_BYTES = 1024;
/** Longest scanned payload we parse (a real one is 78 bytes). */
export const MAX_SCANNED_BYTES = 1024;

const DJB_KEY_TYPE = 0x05;
const FINGERPRINT_VERSION = new Uint8Array([0, 0]);
const SCANNABLE_BYTES = 32;
const DISPLAY_BYTES = 30;

export type FingerprintErrorCode = "invalid-argument" | "parse" | "version-mismatch";

export class FingerprintError extends Error {
  constructor(readonly code: FingerprintErrorCode, message: string) {
    super(message);
    this.name = "FingerprintError";
  }
}

export interface SafetyNumberInput {
  /** Our stable identifier: account id string (UTF-8 encoded) or raw bytes. */
  localId: string | Uint8Array;
  localIdentityKey: Uint8Array;
  remoteId: string | Uint8Array;
  remoteIdentityKey: Uint8Array;
  /** Defaults to 5200; must be in 2..1,000,000 like libsignal. */
  iterations?: number;
  /** Version written into the scannable form; defaults to 2. */
  scannableVersion?: number;
}

export interface SafetyNumber {
  /** 60 decimal digits, identical on both sides. */
  displayable: string;
  /** Serialized CombinedFingerprints protobuf for a QR code (local first, as libsignal). */
  scannable: Uint8Array;
}

/** Computes the displayable and scannable safety number for a pair of identities. */
export function safetyNumber(input: SafetyNumberInput): SafetyNumber {
  const iterations = input.iterations ?? DEFAULT_ITERATIONS;
  if (!Number.isInteger(iterations) || iterations <= 1 || iterations > MAX_ITERATIONS) {
    throw new FingerprintError(
      "invalid-argument",
      `iterations must be an integer in 2..${MAX_ITERATIONS}, got ${iterations}`,
    );
  }
  const version = input.scannableVersion ?? DEFAULT_SCANNABLE_VERSION;
  const local = iteratedHash(
    iterations,
    stableIdBytes(input.localId, "localId"),
    identityKeyBytes(input.localIdentityKey, "localIdentityKey"),
  );
  const remote = iteratedHash(
    iterations,
    stableIdBytes(input.remoteId, "remoteId"),
    identityKeyBytes(input.remoteIdentityKey, "remoteIdentityKey"),
  );
  const localDigits = displayDigits(local);
  const remoteDigits = displayDigits(remote);
  return {
    displayable: localDigits < remoteDigits
      ? localDigits + remoteDigits
      : remoteDigits + localDigits,
    scannable: encodeScannableFingerprint(
      version,
      local.subarray(0, SCANNABLE_BYTES),
      remote.subarray(0, SCANNABLE_BYTES),
    ),
  };
}

/**
 * Serializes a scannable fingerprint (libsignal ScannableFingerprint::serialize):
 * CombinedFingerprints { version, local_fingerprint { content }, remote_fingerprint { content } }.
 */
export function encodeScannableFingerprint(
  version: number,
  local: Uint8Array,
  remote: Uint8Array,
): Uint8Array {
  if (!Number.isInteger(version) || version < 0 || version > 0xffff_ffff) {
    throw new FingerprintError("invalid-argument", "scannable version must be a uint32");
  }
  if (local.length !== SCANNABLE_BYTES || remote.length !== SCANNABLE_BYTES) {
    throw new FingerprintError("invalid-argument", "scannable halves must be 32 bytes each");
  }
  const versionVarint = encodeVarint(version);
  const out = new Uint8Array(1 + versionVarint.length + 2 * (4 + SCANNABLE_BYTES));
  let at = 0;
  out[at++] = 0x08; // field 1, varint
  out.set(versionVarint, at);
  at += versionVarint.length;
  for (const [tag, content] of [[0x12, local], [0x1a, remote]] as const) {
    out[at++] = tag; // field 2 or 3, length-delimited
    out[at++] = 2 + SCANNABLE_BYTES;
    out[at++] = 0x0a; // LogicalFingerprint.content
    out[at++] = SCANNABLE_BYTES;
    out.set(content, at);
    at += SCANNABLE_BYTES;
  }
  return out;
}

/**
 * Checks a scanned QR payload against our own scannable fingerprint, like libsignal's
 * ScannableFingerprint::compare: their local half must equal our remote half and vice versa.
 * The byte comparison is constant time. Throws FingerprintError on malformed input or when
 * the scanned version differs from ours (the user should update the app, not "mismatch").
 */
export function compareScannedFingerprint(ours: Uint8Array, scanned: Uint8Array): boolean {
  const mine = decodeCombinedFingerprints(ours, "our fingerprint");
  const theirs = decodeCombinedFingerprints(scanned, "scanned fingerprint");
  if (theirs.version !== mine.version) {
    throw new FingerprintError(
      "version-mismatch",
      `fingerprint version mismatch: theirs ${theirs.version}, ours ${mine.version}`,
    );
  }
  if (theirs.local === undefined || theirs.remote === undefined) {
    throw new FingerprintError("parse", "scanned fingerprint lacks a local or remote half");
  }
  if (mine.local === undefined || mine.remote === undefined) {
    throw new FingerprintError("parse", "our fingerprint lacks a local or remote half");
  }
  // Evaluate both comparisons before combining so timing does not reveal which half differs.
  const same1 = constantTimeEqual(theirs.local, mine.remote);
  const same2 = constantTimeEqual(theirs.remote, mine.local);
  return same1 && same2;
}

function iteratedHash(iterations: number, stableId: Uint8Array, key: Uint8Array): Uint8Array {
  const first = new Uint8Array(FINGERPRINT_VERSION.length + 2 * key.length + stableId.length);
  first.set(FINGERPRINT_VERSION, 0);
  first.set(key, FINGERPRINT_VERSION.length);
  first.set(stableId, FINGERPRINT_VERSION.length + key.length);
  first.set(key, FINGERPRINT_VERSION.length + key.length + stableId.length);
  let digest = sha512(first);
  // One reusable input buffer: previous digest followed by the key.
  const round = new Uint8Array(digest.length + key.length);
  round.set(key, digest.length);
  for (let i = 1; i < iterations; i++) {
    round.set(digest, 0);
    digest = sha512(round);
  }
  return digest;
}

function displayDigits(fingerprint: Uint8Array): string {
  let out = "";
  for (let offset = 0; offset < DISPLAY_BYTES; offset += 5) {
    // 40-bit big-endian integer; a double holds it exactly.
    let value = 0;
    for (let i = 0; i < 5; i++) value = value * 256 + fingerprint[offset + i]!;
    out += String(value % 100_000).padStart(5, "0");
  }
  return out;
}

function stableIdBytes(id: string | Uint8Array, field: string): Uint8Array {
  const bytes = typeof id === "string" ? new TextEncoder().encode(id) : id;
  if (!(bytes instanceof Uint8Array)) {
    throw new FingerprintError("invalid-argument", `${field} must be a string or Uint8Array`);
  }
  if (bytes.length === 0 || bytes.length > MAX_STABLE_ID_BYTES) {
    throw new FingerprintError(
      "invalid-argument",
      `${field} must be 1..${MAX_STABLE_ID_BYTES} bytes, got ${bytes.length}`,
    );
  }
  return bytes;
}

function identityKeyBytes(key: Uint8Array, field: string): Uint8Array {
  if (!(key instanceof Uint8Array)) {
    throw new FingerprintError("invalid-argument", `${field} must be a Uint8Array`);
  }
  if (key.length === 33 && key[0] === DJB_KEY_TYPE) return key;
  if (key.length === 32) {
    const serialized = new Uint8Array(33);
    serialized[0] = DJB_KEY_TYPE;
    serialized.set(key, 1);
    return serialized;
  }
  throw new FingerprintError(
    "invalid-argument",
    `${field} must be 33 bytes starting with 0x05 or a raw 32-byte Curve25519 key`,
  );
}

// --- CombinedFingerprints protobuf parsing (version = 1, local_fingerprint = 2,
// remote_fingerprint = 3; LogicalFingerprint.content = 1) ---

interface CombinedFingerprints {
  version: number;
  local?: Uint8Array;
  remote?: Uint8Array;
}

function decodeCombinedFingerprints(bytes: Uint8Array, what: string): CombinedFingerprints {
  if (!(bytes instanceof Uint8Array) || bytes.length > MAX_SCANNED_BYTES) {
    throw new FingerprintError("parse", `${what} must be a Uint8Array of at most 1024 bytes`);
  }
  const result: CombinedFingerprints = { version: 0 };
  forEachField(bytes, what, (field, wireType, value) => {
    if (field === 1 && wireType === 0) result.version = value as number;
    else if ((field === 2 || field === 3) && wireType === 2) {
      let content: Uint8Array | undefined;
      forEachField(value as Uint8Array, what, (inner, innerType, innerValue) => {
        if (inner === 1 && innerType === 2) content = innerValue as Uint8Array;
      });
      if (content === undefined) {
        throw new FingerprintError("parse", `${what}: logical fingerprint without content`);
      }
      if (field === 2) result.local = content;
      else result.remote = content;
    }
  });
  return result;
}

type FieldVisitor = (field: number, wireType: number, value: number | Uint8Array) => void;

function forEachField(bytes: Uint8Array, what: string, visit: FieldVisitor): void {
  let at = 0;
  const fail = (reason: string): never => {
    throw new FingerprintError("parse", `${what}: ${reason}`);
  };
  const readVarint = (): number => {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (at >= bytes.length) fail("truncated varint");
      const byte = bytes[at++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) {
        if (value > 0xffff_ffff) fail("varint exceeds 32 bits");
        return value;
      }
    }
    return fail("varint too long");
  };
  while (at < bytes.length) {
    const tag = readVarint();
    const field = tag >>> 3;
    const wireType = tag & 7;
    if (field === 0) fail("field number 0");
    if (wireType === 0) visit(field, wireType, readVarint());
    else if (wireType === 2) {
      const length = readVarint();
      if (length > bytes.length - at) fail("truncated length-delimited field");
      visit(field, wireType, bytes.subarray(at, at + length));
      at += length;
    } else if (wireType === 1 || wireType === 5) {
      const width = wireType === 1 ? 8 : 4;
      if (width > bytes.length - at) fail("truncated fixed-width field");
      at += width;
    } else fail(`unsupported wire type ${wireType}`);
  }
}

function encodeVarint(value: number): Uint8Array {
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
  return Uint8Array.from(out);
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
