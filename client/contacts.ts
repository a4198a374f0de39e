/**
 * Contacts and the identity keys we trust for them. Trust on first use: the first identity key
 * seen for an account is recorded. A different key later is an identity change: the user is
 * warned; if the contact was verified (safety number compared), sending to it stops until the
 * user accepts the new key. Pure logic over data; no I/O.
 */

import { safetyNumber } from "../crypto/mod.ts";
import { constantTimeEqual } from "../crypto/primitives.ts";
import { b64, bool, bytes, int, list, optStr, record, str } from "./records.ts";

export const CONTACTS_MAX = 5_000;

export interface Contact {
  accountId: string;
  username?: string;
  /** The identity key we trust (33 bytes, encoded). */
  identityKey?: Uint8Array;
  /** The user compared safety numbers for `identityKey`. */
  verified: boolean;
  /** Set when the key changed; cleared when the user accepts the change. */
  changedAtMs?: number;
  /** The change happened while verified: sending waits for the user's approval. */
  blocked: boolean;
}

export type IdentityVerdict =
  | { kind: "new" }
  | { kind: "same" }
  | { kind: "changed"; wasVerified: boolean };

export class Contacts {
  readonly #contacts = new Map<string, Contact>();

  get(accountId: string): Contact | undefined {
    return this.#contacts.get(accountId);
  }

  all(): Contact[] {
    return [...this.#contacts.values()];
  }

  byUsername(username: string): Contact | undefined {
    const wanted = username.toLowerCase();
    return this.all().find((contact) => contact.username === wanted);
  }

  /** Adds or updates a contact's name. */
  upsert(accountId: string, username?: string): Contact {
    let contact = this.#contacts.get(accountId);
    if (!contact) {
      contact = { accountId, verified: false, blocked: false };
      this.#contacts.set(accountId, contact);
      for (const oldest of this.#contacts.keys()) {
        if (this.#contacts.size <= CONTACTS_MAX) break;
        this.#contacts.delete(oldest);
      }
    }
    if (username) contact.username = username.toLowerCase();
    return contact;
  }

  /** What `identityKey` would mean for this contact, without recording anything. */
  compareIdentity(accountId: string, identityKey: Uint8Array): IdentityVerdict {
    const contact = this.#contacts.get(accountId);
    if (!contact?.identityKey) return { kind: "new" };
    if (constantTimeEqual(contact.identityKey, identityKey)) return { kind: "same" };
    return { kind: "changed", wasVerified: contact.verified };
  }

  /** Records an identity key seen from the server or in a handshake, and says what it means. */
  observeIdentity(accountId: string, identityKey: Uint8Array, now: number): IdentityVerdict {
    const contact = this.upsert(accountId);
    if (!contact.identityKey) {
      contact.identityKey = identityKey.slice();
      return { kind: "new" };
    }
    if (constantTimeEqual(contact.identityKey, identityKey)) return { kind: "same" };
    const wasVerified = contact.verified;
    contact.identityKey = identityKey.slice();
    contact.verified = false;
    contact.changedAtMs = now;
    contact.blocked = wasVerified;
    return { kind: "changed", wasVerified };
  }

  /** The user accepted a changed key. */
  acceptIdentity(accountId: string): void {
    const contact = this.#contacts.get(accountId);
    if (!contact) return;
    contact.blocked = false;
    delete contact.changedAtMs;
  }

  /** The user compared the safety number for the current key. */
  markVerified(accountId: string, verified: boolean): void {
    const contact = this.#contacts.get(accountId);
    if (!contact) return;
    contact.verified = verified;
    if (verified) {
      contact.blocked = false;
      delete contact.changedAtMs;
    }
  }

  toJSON() {
    return this.all().map((c) => ({
      accountId: c.accountId,
      username: c.username ?? null,
      identityKey: c.identityKey ? b64(c.identityKey) : null,
      verified: c.verified,
      changedAtMs: c.changedAtMs ?? null,
      blocked: c.blocked,
    }));
  }

  static fromJSON(value: unknown): Contacts {
    const contacts = new Contacts();
    for (const [i, item] of list(value, "contacts").entries()) {
      const r = record(item, `contacts[${i}]`);
      const username = optStr(r.username, "username", 64);
      const contact: Contact = {
        accountId: str(r.accountId, "accountId", 64),
        ...(username !== undefined ? { username } : {}),
        ...(r.identityKey !== null ? { identityKey: bytes(r.identityKey, "identityKey") } : {}),
        verified: bool(r.verified, "verified"),
        ...(r.changedAtMs !== null ? { changedAtMs: int(r.changedAtMs, "changedAtMs") } : {}),
        blocked: bool(r.blocked, "blocked"),
      };
      contacts.#contacts.set(contact.accountId, contact);
    }
    return contacts;
  }
}

/** The 60-digit safety number both sides see for a pair of accounts and identity keys. */
export function safetyNumberFor(
  local: { accountId: string; identityKey: Uint8Array },
  remote: { accountId: string; identityKey: Uint8Array },
): string {
  return safetyNumber({
    localId: local.accountId,
    localIdentityKey: local.identityKey,
    remoteId: remote.accountId,
    remoteIdentityKey: remote.identityKey,
  }).displayable;
}

/** Digits only, so "12345 67890 ..." and "1234567890..." compare equal. */
export function normalizeSafetyNumber(text: string): string {
  return text.replace(/[\s-]/g, "");
}

/** Compares a typed or scanned number with ours, in constant time. */
export function safetyNumbersMatch(ours: string, theirs: string): boolean {
  const a = new TextEncoder().encode(normalizeSafetyNumber(ours));
  const b = new TextEncoder().encode(normalizeSafetyNumber(theirs));
  return a.length === b.length && constantTimeEqual(a, b);
}
