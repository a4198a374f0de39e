/**
 * The device's private prekeys: the signed prekey (current and a few previous ones, so messages
 * sent during a rotation still open), one-time EC and ML-KEM prekeys until a session consumes
 * them, and the last-resort ML-KEM prekey. It is the responder's PrekeyStore for acceptSession,
 * and it mints new batches with ids that never collide with keys it still holds.
 */

import {
  deserializePrekey,
  type EcPrekey,
  generateKemPrekeys,
  generateLastResortKemPrekey,
  generateOneTimePrekeys,
  generateSignedPrekey,
  type IdentityKeyPair,
  type KemPrekey,
  type PrekeyStore,
  type PublicPrekey,
  serializePrekey,
  toPublicPrekey,
} from "../crypto/mod.ts";
import { b64, bytes, int, list, record } from "./records.ts";

/** The contract's key id range. */
export const KEY_ID_MAX = 16_777_215;
/** Previous signed / last-resort keys kept for messages sent before a rotation arrived. */
const PREVIOUS_KEPT = 2;
/** One-time keys held locally; the server holds at most its own cap, older ones are dropped. */
export const ONE_TIME_KEPT_MAX = 2_000;

interface Held {
  id: number;
  record: Uint8Array;
  createdAtMs: number;
}

type Json = ReturnType<PrekeyVault["toJSON"]>;
type IdKind = "signed" | "oneTime" | "kem";

export class PrekeyVault implements PrekeyStore {
  /** Newest first. */
  #signed: Held[] = [];
  #lastResort: Held[] = [];
  readonly #oneTime = new Map<number, Held>();
  readonly #kem = new Map<number, Held>();
  #next: Record<IdKind, number> = { signed: 1, oneTime: 1, kem: 1 };

  // --- PrekeyStore (acceptSession) -------------------------------------------------------

  signedPrekey(id: number) {
    const held = this.#signed.find((key) => key.id === id);
    return held ? (deserializePrekey(held.record) as EcPrekey).keyPair : undefined;
  }

  oneTimePrekey(id: number) {
    const held = this.#oneTime.get(id);
    return held ? (deserializePrekey(held.record) as EcPrekey).keyPair : undefined;
  }

  kemPrekey(id: number) {
    const held = this.#kem.get(id) ?? this.#lastResort.find((key) => key.id === id);
    return held ? (deserializePrekey(held.record) as KemPrekey).keyPair : undefined;
  }

  consumeOneTimePrekeys(ids: { oneTimePrekeyId?: number; kemPrekeyId?: number }): boolean {
    const ec = ids.oneTimePrekeyId;
    const kem = ids.kemPrekeyId;
    const kemIsLastResort = kem !== undefined && this.#lastResort.some((key) => key.id === kem);
    if (ec !== undefined && !this.#oneTime.has(ec)) return false;
    if (kem !== undefined && !kemIsLastResort && !this.#kem.has(kem)) return false;
    if (ec !== undefined) this.#oneTime.delete(ec);
    if (kem !== undefined && !kemIsLastResort) this.#kem.delete(kem);
    return true;
  }

  /** True when the KEM prekey id names a last-resort key (it is reusable: replays need care). */
  isLastResortKem(id: number): boolean {
    return this.#lastResort.some((key) => key.id === id);
  }

  // --- minting ------------------------------------------------------------------------------

  get currentSigned(): { id: number; createdAtMs: number } | undefined {
    const current = this.#signed[0];
    return current && { id: current.id, createdAtMs: current.createdAtMs };
  }

  get oneTimeCount(): number {
    return this.#oneTime.size;
  }

  get kemCount(): number {
    return this.#kem.size;
  }

  async newSignedPrekey(identity: IdentityKeyPair, now: number): Promise<PublicPrekey> {
    const id = this.#allocate(
      "signed",
      (candidate) => this.#signed.some((k) => k.id === candidate),
    );
    const prekey = await generateSignedPrekey(identity, id);
    this.#signed = [{ id, record: serializePrekey(prekey), createdAtMs: now }, ...this.#signed]
      .slice(0, 1 + PREVIOUS_KEPT);
    return toPublicPrekey(prekey);
  }

  async newLastResortKem(identity: IdentityKeyPair, now: number): Promise<PublicPrekey> {
    const id = this.#allocate("kem", (candidate) => this.#kemIdTaken(candidate));
    const prekey = await generateLastResortKemPrekey(identity, id);
    this.#lastResort = [
      { id, record: serializePrekey(prekey), createdAtMs: now },
      ...this.#lastResort,
    ]
      .slice(0, 1 + PREVIOUS_KEPT);
    return toPublicPrekey(prekey);
  }

  async newOneTimePrekeys(
    identity: IdentityKeyPair,
    count: number,
    now: number,
  ): Promise<PublicPrekey[]> {
    const out: PublicPrekey[] = [];
    for (let i = 0; i < count; i++) {
      const id = this.#allocate("oneTime", (candidate) => this.#oneTime.has(candidate));
      const [prekey] = await generateOneTimePrekeys(identity, id, 1);
      this.#oneTime.set(id, { id, record: serializePrekey(prekey!), createdAtMs: now });
      out.push(toPublicPrekey(prekey!));
    }
    trimOldest(this.#oneTime, ONE_TIME_KEPT_MAX);
    return out;
  }

  async newKemPrekeys(
    identity: IdentityKeyPair,
    count: number,
    now: number,
  ): Promise<PublicPrekey[]> {
    const out: PublicPrekey[] = [];
    for (let i = 0; i < count; i++) {
      const id = this.#allocate("kem", (candidate) => this.#kemIdTaken(candidate));
      const [prekey] = await generateKemPrekeys(identity, id, 1);
      this.#kem.set(id, { id, record: serializePrekey(prekey!), createdAtMs: now });
      out.push(toPublicPrekey(prekey!));
    }
    trimOldest(this.#kem, ONE_TIME_KEPT_MAX);
    return out;
  }

  /** Forgets every one-time key (the server dropped them, e.g. after an identity change). */
  clearOneTime(): void {
    this.#oneTime.clear();
    this.#kem.clear();
  }

  /** Forgets everything (a new identity makes every old prekey useless). */
  clearAll(): void {
    this.clearOneTime();
    this.#signed = [];
    this.#lastResort = [];
  }

  #kemIdTaken(id: number): boolean {
    return this.#kem.has(id) || this.#lastResort.some((key) => key.id === id);
  }

  #allocate(kind: IdKind, taken: (id: number) => boolean): number {
    for (let tries = 0; tries <= KEY_ID_MAX; tries++) {
      const id = this.#next[kind];
      this.#next[kind] = id >= KEY_ID_MAX ? 1 : id + 1;
      if (!taken(id)) return id;
    }
    throw new RangeError("no free prekey id");
  }

  // --- persistence --------------------------------------------------------------------------

  toJSON() {
    const held = (key: Held) => ({ id: key.id, record: b64(key.record), at: key.createdAtMs });
    return {
      signed: this.#signed.map(held),
      lastResort: this.#lastResort.map(held),
      oneTime: [...this.#oneTime.values()].map(held),
      kem: [...this.#kem.values()].map(held),
      next: { ...this.#next },
    };
  }

  static fromJSON(value: unknown): PrekeyVault {
    const json = record(value, "prekeys") as Partial<Record<keyof Json, unknown>>;
    const held = (item: unknown, what: string): Held => {
      const r = record(item, what);
      return {
        id: int(r.id, `${what}.id`, 1, KEY_ID_MAX),
        record: bytes(r.record, `${what}.record`),
        createdAtMs: int(r.at, `${what}.at`),
      };
    };
    const vault = new PrekeyVault();
    vault.#signed = list(json.signed, "prekeys.signed").map((k, i) => held(k, `signed[${i}]`));
    vault.#lastResort = list(json.lastResort, "prekeys.lastResort").map((k, i) =>
      held(k, `lastResort[${i}]`)
    );
    for (const [i, k] of list(json.oneTime, "prekeys.oneTime").entries()) {
      const key = held(k, `oneTime[${i}]`);
      vault.#oneTime.set(key.id, key);
    }
    for (const [i, k] of list(json.kem, "prekeys.kem").entries()) {
      const key = held(k, `kem[${i}]`);
      vault.#kem.set(key.id, key);
    }
    const next = record(json.next, "prekeys.next");
    vault.#next = {
      signed: int(next.signed, "next.signed", 1, KEY_ID_MAX),
      oneTime: int(next.oneTime, "next.oneTime", 1, KEY_ID_MAX),
      kem: int(next.kem, "next.kem", 1, KEY_ID_MAX),
    };
    return vault;
  }
}

/** Maps keep insertion order: the first entries are the oldest. */
function trimOldest<V>(map: Map<number, V>, max: number): void {
  for (const id of map.keys()) {
    if (map.size <= max) return;
    map.delete(id);
  }
}
