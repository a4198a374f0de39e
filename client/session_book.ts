/**
 * Sesame-style session records: for every remote device (of a contact or of our own account)
 * its registration id and its ratchet sessions, the active one first. Incoming messages may
 * still arrive on an older session (both sides started one at the same time), so a few are
 * kept; a message that opens on an older session makes it the active one again.
 *
 * Also remembers the base keys of handshakes that consumed no one-time prekey: such a prekey
 * message could be replayed against the (reusable) last-resort key, so a second session with
 * the same base key is refused (see crypto/session.ts).
 */

import { deserializeSession, serializeSession, type Session } from "../crypto/mod.ts";
import { toHex } from "./bytes.ts";
import { b64, bytes, int, list, RecentSet, record, str } from "./records.ts";

/** Sessions kept per remote device (the active one and older ones still receiving). */
export const SESSIONS_PER_DEVICE = 4;
/** Base keys remembered for replay refusal. */
export const BASE_KEYS_KEPT = 5_000;
/** Remote devices with sessions (contacts' devices and our own). */
export const DEVICES_MAX = 10_000;

export interface RemoteDevice {
  accountId: string;
  deviceId: string;
  registrationId: number;
  /** Active first. */
  sessions: Session[];
}

const keyOf = (accountId: string, deviceId: string) => `${accountId}/${deviceId}`;

export class SessionBook {
  readonly #devices = new Map<string, RemoteDevice>();
  #baseKeys = new RecentSet(BASE_KEYS_KEPT);

  get(accountId: string, deviceId: string): RemoteDevice | undefined {
    return this.#devices.get(keyOf(accountId, deviceId));
  }

  /** The devices of an account that have a session. */
  devicesOf(accountId: string): RemoteDevice[] {
    return [...this.#devices.values()].filter((device) => device.accountId === accountId);
  }

  /**
   * Adds a session and makes it active. A different registration id means the device was
   * reinstalled: its old sessions are dropped.
   */
  add(accountId: string, deviceId: string, registrationId: number, session: Session): void {
    const key = keyOf(accountId, deviceId);
    const existing = this.#devices.get(key);
    if (existing && existing.registrationId === registrationId) {
      existing.sessions = [session, ...existing.sessions].slice(0, SESSIONS_PER_DEVICE);
      return;
    }
    this.#devices.delete(key);
    this.#devices.set(key, { accountId, deviceId, registrationId, sessions: [session] });
    for (const oldest of this.#devices.keys()) {
      if (this.#devices.size <= DEVICES_MAX) break;
      this.#devices.delete(oldest);
    }
  }

  /** Makes `session` the device's active session (it just decrypted a message). */
  promote(device: RemoteDevice, session: Session): void {
    device.sessions = [session, ...device.sessions.filter((s) => s !== session)];
  }

  /** The session whose handshake used `baseKey`, if any. */
  findByBaseKey(device: RemoteDevice | undefined, baseKey: Uint8Array): Session | undefined {
    const wanted = toHex(baseKey);
    return device?.sessions.find((session) => toHex(session.baseKey) === wanted);
  }

  dropDevice(accountId: string, deviceId: string): boolean {
    return this.#devices.delete(keyOf(accountId, deviceId));
  }

  dropAccount(accountId: string): number {
    let dropped = 0;
    for (const device of this.devicesOf(accountId)) {
      this.#devices.delete(keyOf(accountId, device.deviceId));
      dropped++;
    }
    return dropped;
  }

  dropAll(): void {
    this.#devices.clear();
  }

  baseKeySeen(baseKey: Uint8Array): boolean {
    return this.#baseKeys.has(toHex(baseKey));
  }

  rememberBaseKey(baseKey: Uint8Array): void {
    this.#baseKeys.add(toHex(baseKey));
  }

  toJSON() {
    return {
      devices: [...this.#devices.values()].map((device) => ({
        accountId: device.accountId,
        deviceId: device.deviceId,
        registrationId: device.registrationId,
        sessions: device.sessions.map((session) => b64(serializeSession(session))),
      })),
      baseKeys: this.#baseKeys.toJSON(),
    };
  }

  static fromJSON(value: unknown): SessionBook {
    const json = record(value, "sessions");
    const book = new SessionBook();
    for (const [i, item] of list(json.devices, "sessions.devices").entries()) {
      const r = record(item, `devices[${i}]`);
      const device: RemoteDevice = {
        accountId: str(r.accountId, "accountId", 64),
        deviceId: str(r.deviceId, "deviceId", 64),
        registrationId: int(r.registrationId, "registrationId", 0, 0xffff_ffff),
        sessions: list(r.sessions, "sessions").map((s, j) =>
          deserializeSession(bytes(s, `devices[${i}].sessions[${j}]`))
        ),
      };
      book.#devices.set(keyOf(device.accountId, device.deviceId), device);
    }
    book.#baseKeys = RecentSet.fromJSON(BASE_KEYS_KEPT, json.baseKeys, "sessions.baseKeys");
    return book;
  }
}
