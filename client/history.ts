import type { FileRef } from "./content.ts";
/**
 * Conversations as the user sees them: per contact account, the messages in order with their
 * delivery state. Bounded (oldest messages and conversations are dropped first). Pure logic.
 */

import { bool, corrupt, int, list, optStr, record, str } from "./records.ts";

export const MESSAGES_PER_CONVERSATION = 1_000;
export const CONVERSATIONS_MAX = 1_000;
/**
 * Messages kept in all: the history lives in the profile, which is rewritten on every change.
 * Apps that keep long histories store them in their own database from the events.
 */
export const MESSAGES_MAX = 20_000;

export type MessageStatus =
  /** Outgoing: encrypted, not yet accepted by the server. */
  | "sending"
  /** Outgoing: stored for every recipient device. */
  | "sent"
  /** Outgoing: a recipient device acknowledged it. */
  | "delivered"
  /** Outgoing: the recipient read it. Incoming: we read it. */
  | "read"
  /** Outgoing: could not be sent. */
  | "failed"
  /** Incoming, not read yet. */
  | "unread";

const STATUSES: readonly MessageStatus[] = [
  "sending",
  "sent",
  "delivered",
  "read",
  "failed",
  "unread",
];
const OUTGOING_RANK: Partial<Record<MessageStatus, number>> = {
  sending: 0,
  failed: 0,
  sent: 1,
  delivered: 2,
  read: 3,
};

export interface StoredMessage {
  /** The sender's client message id. */
  id: string;
  direction: "in" | "out";
  body: string;
  /** The sender's clock. */
  sentAtMs: number;
  /** The server's clock when it accepted the message; the display order. */
  serverTimestampMs: number;
  /** The device that sent it (theirs for incoming, ours for outgoing). */
  senderDeviceId: string;
  status: MessageStatus;
  /** The sender's identity key had changed when this arrived. */
  identityWarning: boolean;
  /** An attached file (saveFile fetches and opens it). */
  file?: FileRef;
}

export class History {
  readonly #conversations = new Map<string, StoredMessage[]>();
  #total = 0;

  /** Account ids with messages, most recent conversation first. */
  conversations(): string[] {
    return [...this.#conversations.entries()]
      .sort((a, b) => lastTime(b[1]) - lastTime(a[1]))
      .map(([peer]) => peer);
  }

  messages(peer: string): StoredMessage[] {
    return [...(this.#conversations.get(peer) ?? [])];
  }

  find(peer: string, id: string): StoredMessage | undefined {
    return this.#conversations.get(peer)?.find((message) => message.id === id);
  }

  /** Adds a message in server-time order; a message with a known id is not added twice. */
  add(peer: string, message: StoredMessage): boolean {
    let messages = this.#conversations.get(peer);
    if (!messages) {
      messages = [];
      this.#conversations.set(peer, messages);
    }
    if (messages.some((m) => m.id === message.id && m.direction === message.direction)) {
      return false;
    }
    let at = messages.length;
    while (at > 0 && displayOrder(messages[at - 1]!, message) > 0) at--;
    messages.splice(at, 0, message);
    this.#total++;
    if (messages.length > MESSAGES_PER_CONVERSATION) {
      this.#total -= messages.splice(0, messages.length - MESSAGES_PER_CONVERSATION).length;
    }
    this.#trimConversations();
    this.#trimTotal();
    return true;
  }

  /** Moves an outgoing message forward (never back: a late "delivered" does not undo "read"). */
  advance(
    peer: string,
    id: string,
    status: MessageStatus,
    serverTimestampMs?: number,
  ): StoredMessage | undefined {
    const message = this.find(peer, id);
    if (!message || message.direction !== "out") return undefined;
    if (serverTimestampMs !== undefined) {
      message.serverTimestampMs = serverTimestampMs;
      this.#resort(peer);
    }
    const rank = OUTGOING_RANK[status] ?? 0;
    if (
      status === "failed"
        ? message.status === "sending"
        : rank > (OUTGOING_RANK[message.status] ?? 0)
    ) {
      message.status = status;
    }
    return message;
  }

  /** Incoming unread messages of a conversation. */
  unread(peer: string): StoredMessage[] {
    return this.messages(peer).filter((m) => m.direction === "in" && m.status === "unread");
  }

  /** Marks incoming messages read; returns the ids that changed. */
  markRead(peer: string, ids?: readonly string[]): string[] {
    const changed: string[] = [];
    for (const message of this.#conversations.get(peer) ?? []) {
      if (message.direction !== "in" || message.status !== "unread") continue;
      if (ids && !ids.includes(message.id)) continue;
      message.status = "read";
      changed.push(message.id);
    }
    return changed;
  }

  #resort(peer: string): void {
    this.#conversations.get(peer)?.sort(displayOrder);
  }

  #trimConversations(): void {
    if (this.#conversations.size <= CONVERSATIONS_MAX) return;
    const oldest = [...this.#conversations.entries()].sort((a, b) =>
      lastTime(a[1]) - lastTime(b[1])
    );
    for (const [peer, messages] of oldest.slice(0, this.#conversations.size - CONVERSATIONS_MAX)) {
      this.#conversations.delete(peer);
      this.#total -= messages.length;
    }
  }

  /** Drops the oldest messages of all conversations beyond MESSAGES_MAX. */
  #trimTotal(): void {
    while (this.#total > MESSAGES_MAX) {
      let oldestPeer: string | undefined;
      let oldestTime = Infinity;
      for (const [peer, messages] of this.#conversations) {
        const first = messages[0]?.serverTimestampMs ?? Infinity;
        if (first < oldestTime) [oldestPeer, oldestTime] = [peer, first];
      }
      const messages = oldestPeer === undefined ? undefined : this.#conversations.get(oldestPeer);
      if (!messages) return;
      messages.shift();
      this.#total--;
      if (messages.length === 0) this.#conversations.delete(oldestPeer!);
    }
  }

  toJSON() {
    return [...this.#conversations.entries()].map(([peer, messages]) => ({ peer, messages }));
  }

  static fromJSON(value: unknown): History {
    const history = new History();
    for (const [i, item] of list(value, "history").entries()) {
      const r = record(item, `history[${i}]`);
      const peer = str(r.peer, "peer", 64);
      const messages = list(r.messages, "messages").map((m, j): StoredMessage => {
        const x = record(m, `history[${i}].messages[${j}]`);
        const status = str(x.status, "status", 16) as MessageStatus;
        if (!STATUSES.includes(status)) throw corrupt(`unknown message status ${status}`);
        const direction = str(x.direction, "direction", 3);
        if (direction !== "in" && direction !== "out") throw corrupt("bad message direction");
        return {
          id: str(x.id, "id", 64),
          direction,
          body: str(x.body, "body", 64 * 1024),
          sentAtMs: int(x.sentAtMs, "sentAtMs"),
          serverTimestampMs: int(x.serverTimestampMs, "serverTimestampMs"),
          senderDeviceId: optStr(x.senderDeviceId, "senderDeviceId", 64) ?? "",
          status,
          identityWarning: bool(x.identityWarning, "identityWarning"),
          ...(x.file && typeof x.file === "object" ? { file: fileOf(record(x.file, "file")) } : {}),
        };
      });
      history.#conversations.set(peer, messages);
      history.#total += messages.length;
    }
    return history;
  }
}

/**
 * Server time first; ties (one millisecond holds many messages) by the sender's clock, then by
 * id, so every device of both parties shows a conversation in the same order.
 */
export function displayOrder(a: StoredMessage, b: StoredMessage): number {
  return a.serverTimestampMs - b.serverTimestampMs || a.sentAtMs - b.sentAtMs ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function lastTime(messages: StoredMessage[]): number {
  return messages.at(-1)?.serverTimestampMs ?? 0;
}

export function fileOf(r: Record<string, unknown>): FileRef {
  return {
    mediaId: str(r.mediaId, "file.mediaId", 64),
    key: str(r.key, "file.key", 64),
    digest: str(r.digest, "file.digest", 64),
    size: int(r.size, "file.size"),
    name: str(r.name, "file.name", 255),
    plainSize: int(r.plainSize, "file.plainSize"),
  };
}
