/**
 * Minimal big-endian binary encoding for the library's wire formats and serialized state.
 * Every read is bounds-checked and every variable-length field has an explicit maximum, so a
 * malformed or hostile input ends in CryptoError("malformed"), never in an out-of-range read
 * or an oversized allocation.
 */
import { CryptoError } from "./errors.ts";
import type { Bytes } from "./primitives.ts";

export const MAX_U32 = 0xffffffff;

/** Appends fields to a growing buffer. */
export class ByteWriter {
  #buffer: Uint8Array;
  #view: DataView;
  #length = 0;

  constructor(initialCapacity = 256) {
    this.#buffer = new Uint8Array(initialCapacity);
    this.#view = new DataView(this.#buffer.buffer);
  }

  #reserve(extra: number): number {
    const offset = this.#length;
    const needed = offset + extra;
    if (needed > this.#buffer.length) {
      const grown = new Uint8Array(Math.max(needed, this.#buffer.length * 2));
      grown.set(this.#buffer.subarray(0, offset));
      this.#buffer = grown;
      this.#view = new DataView(grown.buffer);
    }
    this.#length = needed;
    return offset;
  }

  u8(value: number): this {
    checkUint(value, 0xff);
    const offset = this.#reserve(1);
    this.#view.setUint8(offset, value);
    return this;
  }

  u32(value: number): this {
    checkUint(value, MAX_U32);
    const offset = this.#reserve(4);
    this.#view.setUint32(offset, value);
    return this;
  }

  /** A non-negative safe integer (< 2^53) as 8 bytes, e.g. a millisecond timestamp. */
  u64(value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new CryptoError("invalid-argument", "value must be a non-negative safe integer");
    }
    return this.u32(Math.floor(value / 2 ** 32)).u32(value % 2 ** 32);
  }

  /** Fixed-size bytes: the reader must know the length. */
  bytes(value: Uint8Array): this {
    const offset = this.#reserve(value.length); // may replace #buffer: reserve first
    this.#buffer.set(value, offset);
    return this;
  }

  /** Length-prefixed (u32) bytes. */
  varBytes(value: Uint8Array): this {
    return this.u32(value.length).bytes(value);
  }

  /** The encoded bytes (a copy; the writer can be discarded). */
  finish(): Bytes {
    return this.#buffer.slice(0, this.#length);
  }
}

/** Reads fields in order from an encoded buffer. */
export class ByteReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #what: string;
  #offset = 0;

  /** `what` names the structure in error messages. */
  constructor(bytes: Uint8Array, what: string) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#what = what;
  }

  get remaining(): number {
    return this.#bytes.length - this.#offset;
  }

  #take(length: number): number {
    if (length > this.remaining) {
      throw new CryptoError("malformed", `${this.#what} is truncated`);
    }
    const offset = this.#offset;
    this.#offset += length;
    return offset;
  }

  u8(): number {
    return this.#view.getUint8(this.#take(1));
  }

  u32(): number {
    return this.#view.getUint32(this.#take(4));
  }

  /** An 8-byte integer written by ByteWriter.u64; rejects values beyond 2^53 - 1. */
  u64(): number {
    const high = this.u32();
    const low = this.u32();
    if (high >= 2 ** 21) {
      throw new CryptoError("malformed", `${this.#what} has an oversized integer`);
    }
    return high * 2 ** 32 + low;
  }

  /** A copy of the next `length` bytes. */
  bytes(length: number): Bytes {
    const offset = this.#take(length);
    return this.#bytes.slice(offset, offset + length);
  }

  /** Length-prefixed (u32) bytes of at most `maxLength`. */
  varBytes(maxLength: number): Bytes {
    const length = this.u32();
    if (length > maxLength) {
      throw new CryptoError("malformed", `${this.#what} has a field longer than ${maxLength}`);
    }
    return this.bytes(length);
  }

  /** All remaining bytes. */
  rest(): Bytes {
    return this.bytes(this.remaining);
  }

  /** Asserts the input is fully consumed: trailing bytes make an encoding ambiguous. */
  end(): void {
    if (this.remaining !== 0) {
      throw new CryptoError("malformed", `${this.#what} has trailing bytes`);
    }
  }
}

function checkUint(value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new CryptoError("invalid-argument", `value must be an integer in [0, ${max}]`);
  }
}
