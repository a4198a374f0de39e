/**
 * Versioned byte framing for MLS material a device keeps locally (group state, private key
 * packages): magic (4 bytes) || format version (1 byte) || field count (1 byte) ||
 * each field as u32 big-endian length || bytes. The contents are secrets; callers store them
 * encrypted at rest.
 */

/** Largest encoded state we accept back (a 4096-member X-Wing tree is well below this). */
export const MAX_STATE_BYTES = 64 * 1024 * 1024;
const MAX_FIELDS = 16;

export class MlsStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MlsStateError";
  }
}

export function encodeFrames(magic: string, version: number, fields: Uint8Array[]): Uint8Array {
  const magicBytes = magicToBytes(magic);
  if (fields.length > MAX_FIELDS) throw new MlsStateError("too many fields");
  const total = fields.reduce((sum, field) => sum + 4 + field.length, 6);
  if (total > MAX_STATE_BYTES) throw new MlsStateError(`state exceeds ${MAX_STATE_BYTES} bytes`);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(magicBytes, 0);
  out[4] = version;
  out[5] = fields.length;
  let at = 6;
  for (const field of fields) {
    view.setUint32(at, field.length);
    out.set(field, at + 4);
    at += 4 + field.length;
  }
  return out;
}

export function decodeFrames(
  bytes: Uint8Array,
  magic: string,
  what: string,
): { version: number; fields: Uint8Array[] } {
  if (!(bytes instanceof Uint8Array)) throw new MlsStateError(`${what} must be a Uint8Array`);
  if (bytes.length > MAX_STATE_BYTES) {
    throw new MlsStateError(`${what} exceeds ${MAX_STATE_BYTES} bytes`);
  }
  const magicBytes = magicToBytes(magic);
  if (bytes.length < 6 || magicBytes.some((b, i) => bytes[i] !== b)) {
    throw new MlsStateError(`not a Guardyn ${what}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = bytes[5]!;
  if (count > MAX_FIELDS) throw new MlsStateError(`${what}: too many fields`);
  const fields: Uint8Array[] = [];
  let at = 6;
  for (let i = 0; i < count; i++) {
    if (at + 4 > bytes.length) throw new MlsStateError(`${what} is truncated`);
    const length = view.getUint32(at);
    if (length > bytes.length - at - 4) throw new MlsStateError(`${what} is truncated`);
    fields.push(bytes.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  if (at !== bytes.length) throw new MlsStateError(`${what} has trailing bytes`);
  return { version: bytes[4]!, fields };
}

export function u16(value: number): Uint8Array {
  return Uint8Array.of(value >>> 8, value & 0xff);
}

export function readU16(bytes: Uint8Array | undefined, what: string): number {
  if (bytes === undefined || bytes.length !== 2) throw new MlsStateError(`${what}: bad field`);
  return (bytes[0]! << 8) | bytes[1]!;
}

function magicToBytes(magic: string): Uint8Array {
  const bytes = new TextEncoder().encode(magic);
  if (bytes.length !== 4) throw new Error("magic must be 4 ASCII bytes");
  return bytes;
}
