/**
 * The private halves of this device's published MLS key packages, by the server's reference
 * (SHA-256 of the package), kept until a group welcome uses them. Bounded: the oldest go first.
 */

import {
  generateKeyPackage,
  type IdentityKeyPair,
  privateKeyPackageRef,
  signLeafBinding,
} from "../crypto/mod.ts";
import { sha256 } from "../crypto/primitives.ts";
import { toHex } from "./bytes.ts";
import { b64, bool, bytes, int, list, record, str } from "./records.ts";

/** RFC 9420 cipher suite 1 (X25519, AES-128-GCM, Ed25519): the SDK's default. */
export const KEY_PACKAGE_SUITE = 1;
export const KEY_PACKAGES_KEPT_MAX = 600;

interface HeldPackage {
  ref: string;
  /** The RFC 9420 KeyPackageRef a Welcome names; computed when first needed. */
  mlsRef?: string;
  privatePackage: Uint8Array;
  lastResort: boolean;
  createdAtMs: number;
}

export class KeyPackageVault {
  readonly #packages = new Map<string, HeldPackage>();

  get size(): number {
    return this.#packages.size;
  }

  /**
   * The private package a Welcome is addressed to (by the KeyPackageRefs it names), or
   * undefined. Each held package's MLS reference is computed once and remembered.
   */
  async forWelcome(welcomeRefs: readonly string[]): Promise<Uint8Array | undefined> {
    const wanted = new Set(welcomeRefs);
    for (const held of this.#packages.values()) {
      held.mlsRef ??= await privateKeyPackageRef(held.privatePackage);
      if (wanted.has(held.mlsRef)) return held.privatePackage;
    }
    return undefined;
  }

  /** Forgets a one-time package once a Welcome used it (a last-resort one stays). */
  used(privatePackage: Uint8Array): void {
    for (const [ref, held] of this.#packages) {
      if (held.privatePackage === privatePackage && !held.lastResort) this.#packages.delete(ref);
    }
  }

  /** The private package for a published one (by its SHA-256 reference), for joining a group. */
  privatePackage(ref: string): Uint8Array | undefined {
    return this.#packages.get(ref)?.privatePackage;
  }

  /** Mints `count` packages whose credential names this device; returns the public parts. */
  async mint(
    deviceAddress: string,
    count: number,
    lastResort: boolean,
    now: number,
    identity?: IdentityKeyPair,
  ): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    // The account identity key signs each leaf, so members can check whose device it is.
    const bind = identity &&
      ((key: Uint8Array) => signLeafBinding(identity, deviceAddress, key));
    for (let i = 0; i < count; i++) {
      const bundle = await generateKeyPackage(deviceAddress, bind ? { bind } : {});
      const ref = toHex(sha256(bundle.keyPackage));
      this.#packages.set(ref, {
        ref,
        privatePackage: bundle.privateKeyPackage,
        lastResort,
        createdAtMs: now,
      });
      out.push(bundle.keyPackage);
    }
    for (const oldest of this.#packages.keys()) {
      if (this.#packages.size <= KEY_PACKAGES_KEPT_MAX) break;
      this.#packages.delete(oldest);
    }
    return out;
  }

  clear(): void {
    this.#packages.clear();
  }

  toJSON() {
    return [...this.#packages.values()].map((p) => ({
      ref: p.ref,
      privatePackage: b64(p.privatePackage),
      lastResort: p.lastResort,
      at: p.createdAtMs,
    }));
  }

  static fromJSON(value: unknown): KeyPackageVault {
    const vault = new KeyPackageVault();
    for (const [i, item] of list(value, "keyPackages").entries()) {
      const r = record(item, `keyPackages[${i}]`);
      const held: HeldPackage = {
        ref: str(r.ref, "ref", 64),
        privatePackage: bytes(r.privatePackage, "privatePackage"),
        lastResort: bool(r.lastResort, "lastResort"),
        createdAtMs: int(r.at, "at"),
      };
      vault.#packages.set(held.ref, held);
    }
    return vault;
  }
}
