/**
 * The presence grants a device knows (presence.proto): capabilities other accounts sent us
 * (to read their presence) and the grants we gave (their hashes, to revoke them). Kept in the
 * encrypted profile; both maps are bounded like the server's grant limit.
 */

import { b64, bool, bytes, list, record, str } from "./records.ts";

/** Grants kept each way; the server's default PRESENCE_GRANTS_MAX. */
export const PRESENCE_GRANTS_KEPT = 10_000;

export interface ReceivedGrant {
  capability: Uint8Array;
  lastSeen: boolean;
}

export interface GivenGrant {
  grantHash: Uint8Array;
  lastSeen: boolean;
}

export class PresenceBook {
  /** Owner account id -> the capability it sent us. */
  readonly received = new Map<string, ReceivedGrant>();
  /** Watcher account id -> the grant we registered for it. */
  readonly given = new Map<string, GivenGrant>();

  receive(owner: string, grant: ReceivedGrant | undefined): void {
    bounded(this.received, owner, grant);
  }

  give(watcher: string, grant: GivenGrant | undefined): void {
    bounded(this.given, watcher, grant);
  }

  toJSON(): unknown {
    return {
      received: [...this.received].map(([owner, g]) => [owner, b64(g.capability), g.lastSeen]),
      given: [...this.given].map(([watcher, g]) => [watcher, b64(g.grantHash), g.lastSeen]),
    };
  }

  static fromJSON(value: unknown): PresenceBook {
    const book = new PresenceBook();
    // Profiles saved before presence existed have none.
    if (value === undefined) return book;
    const json = record(value, "presence");
    for (const item of list(json.received, "presence.received")) {
      const [owner, capability, lastSeen] = list(item, "presence grant");
      book.receive(str(owner, "presence owner", 64), {
        capability: bytes(capability, "presence capability"),
        lastSeen: bool(lastSeen, "presence lastSeen"),
      });
    }
    for (const item of list(json.given, "presence.given")) {
      const [watcher, grantHash, lastSeen] = list(item, "presence grant");
      book.give(str(watcher, "presence watcher", 64), {
        grantHash: bytes(grantHash, "presence grant hash"),
        lastSeen: bool(lastSeen, "presence lastSeen"),
      });
    }
    return book;
  }
}

function bounded<T>(map: Map<string, T>, key: string, value: T | undefined): void {
  map.delete(key);
  if (value === undefined) return;
  map.set(key, value);
  // The oldest grant goes first (a Map iterates in insertion order).
  if (map.size > PRESENCE_GRANTS_KEPT) map.delete(map.keys().next().value!);
}
