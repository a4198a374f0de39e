/**
 * The groups this device is in, as saved in the profile: each group's MLS state (secrets
 * included: the profile file is encrypted), its name and its recent messages. No I/O.
 */

import type { FileRef } from "./content.ts";
import { fileOf } from "./history.ts";
import { b64, bytes, int, list, optStr, record, str } from "./records.ts";

/** Messages kept per group; older ones are dropped. */
export const GROUP_MESSAGES_KEPT = 1000;

export interface GroupMessage {
  id: string;
  /** "in" from another device, "out" from this one. */
  direction: "in" | "out";
  from: { accountId: string; deviceId: string };
  body: string;
  sentAtMs: number;
  serverTimestampMs: number;
  /** Incoming: read here (a receipt was sent). */
  read?: boolean;
  /** Outgoing: accounts that read it. */
  readBy?: string[];
  /** An attached file (saveGroupFile fetches and opens it); `body` is its caption. */
  file?: FileRef;
}

export interface GroupRecord {
  /** The MLS group id, hex. */
  id: string;
  name: string;
  /** MlsGroup.export() bytes. */
  state: Uint8Array;
  messages: GroupMessage[];
  /** Epoch-authenticator mismatches seen: a fork was detected this many times. */
  forks: number;
  left?: boolean;
}

export class GroupBook {
  readonly #groups = new Map<string, GroupRecord>();

  get(id: string): GroupRecord | undefined {
    return this.#groups.get(id);
  }

  all(): GroupRecord[] {
    return [...this.#groups.values()];
  }

  put(group: GroupRecord): void {
    this.#groups.set(group.id, group);
  }

  delete(id: string): void {
    this.#groups.delete(id);
  }

  addMessage(id: string, message: GroupMessage): boolean {
    const group = this.#groups.get(id);
    if (
      !group ||
      group.messages.some((m) => m.id === message.id && m.from.deviceId === message.from.deviceId)
    ) {
      return false;
    }
    group.messages.push(message);
    if (group.messages.length > GROUP_MESSAGES_KEPT) group.messages.shift();
    return true;
  }

  toJSON() {
    return this.all().map((g) => ({
      id: g.id,
      name: g.name,
      state: b64(g.state),
      messages: g.messages,
      forks: g.forks,
      left: g.left ?? false,
    }));
  }

  static fromJSON(value: unknown): GroupBook {
    const book = new GroupBook();
    if (value === undefined) return book;
    for (const [i, item] of list(value, "groups").entries()) {
      const r = record(item, `groups[${i}]`);
      book.put({
        id: str(r.id, "groups[].id", 128),
        name: optStr(r.name, "groups[].name", 128) ?? "",
        state: bytes(r.state, "groups[].state"),
        messages: list(r.messages, "groups[].messages").map((m, j) => {
          const x = record(m, `groups[].messages[${j}]`);
          const from = record(x.from, "from");
          return {
            id: str(x.id, "id", 128),
            direction: x.direction === "out" ? "out" : "in",
            from: {
              accountId: str(from.accountId, "accountId", 64),
              deviceId: str(from.deviceId, "deviceId", 64),
            },
            body: str(x.body, "body", 65_536),
            sentAtMs: int(x.sentAtMs, "sentAtMs"),
            serverTimestampMs: int(x.serverTimestampMs, "serverTimestampMs"),
            ...(x.read === true ? { read: true } : {}),
            ...(x.file && typeof x.file === "object"
              ? { file: fileOf(record(x.file, "file")) }
              : {}),
            ...(Array.isArray(x.readBy)
              ? { readBy: x.readBy.map((r, k) => str(r, `readBy[${k}]`, 64)).slice(0, 1000) }
              : {}),
          };
        }),
        forks: int(r.forks ?? 0, "forks"),
        left: r.left === true,
      });
    }
    return book;
  }
}
