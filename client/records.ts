/**
 * Helpers to encode local state as JSON and read it back with checks: the profile file is
 * authenticated, but a bug or an old version must fail loudly instead of corrupting state.
 */

import { fromBase64, toBase64 } from "./bytes.ts";
import { GuardynClientError } from "./errors.ts";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export const corrupt = (what: string) =>
  new GuardynClientError("PROFILE_CORRUPT", `profile state: ${what}`);

export const b64 = (bytes: Uint8Array): string => toBase64(bytes);

export function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw corrupt(`${what} is not an object`);
  }
  return value as Record<string, unknown>;
}

export function list(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw corrupt(`${what} is not a list`);
  return value;
}

export function str(value: unknown, what: string, maxChars = 4096): string {
  if (typeof value !== "string" || value.length > maxChars) {
    throw corrupt(`${what} is not a string`);
  }
  return value;
}

export function optStr(value: unknown, what: string, maxChars = 4096): string | undefined {
  return value === undefined || value === null ? undefined : str(value, what, maxChars);
}

export function int(value: unknown, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw corrupt(`${what} is not an integer in ${min}..${max}`);
  }
  return value;
}

export function bool(value: unknown, what: string): boolean {
  if (typeof value !== "boolean") throw corrupt(`${what} is not a boolean`);
  return value;
}

export function bytes(value: unknown, what: string): Uint8Array<ArrayBuffer> {
  try {
    return fromBase64(str(value, what, 1 << 26));
  } catch {
    throw corrupt(`${what} is not base64`);
  }
}

/** A set of strings that remembers the most recent `capacity` entries. */
export class RecentSet {
  readonly #items = new Set<string>();

  constructor(readonly capacity: number, items: Iterable<string> = []) {
    for (const item of items) this.add(item);
  }

  has(item: string): boolean {
    return this.#items.has(item);
  }

  add(item: string): void {
    this.#items.delete(item);
    this.#items.add(item);
    for (const oldest of this.#items) {
      if (this.#items.size <= this.capacity) break;
      this.#items.delete(oldest);
    }
  }

  get size(): number {
    return this.#items.size;
  }

  toJSON(): string[] {
    return [...this.#items];
  }

  static fromJSON(capacity: number, value: unknown, what: string): RecentSet {
    return new RecentSet(
      capacity,
      list(value, what).map((item, i) => str(item, `${what}[${i}]`, 256)),
    );
  }
}
