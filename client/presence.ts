/**
 * Presence for the SDK (presence.proto). Our own status and heartbeats; grants we give (a
 * fresh capability per watcher, sent to it end-to-end encrypted by the client, only its hash
 * registered on the server); and reads of accounts that granted us, with the capability they
 * sent. An account that did not grant us reads as hidden: OFFLINE, no text, no last seen.
 */

import type { Api } from "./api.ts";
import { bearer } from "./transport.ts";
import { fromServiceError } from "./errors.ts";
import {
  type AccountPresence,
  PresenceLevel,
  PresenceStatus,
  type WatchPresenceResponse,
} from "../proto/gen/guardyn/v1/presence.ts";
import type { PresenceBook } from "./presence_book.ts";

export type PresenceStatusName = "online" | "away" | "busy" | "invisible" | "offline";

export interface PresenceInfo {
  accountId: string;
  status: PresenceStatusName;
  customText: string;
  /** When offline: the last time seen, rounded down to the minute (0: hidden or not shared). */
  lastSeenMs: number;
}

const STATUS = new Map<PresenceStatus, PresenceStatusName>([
  [PresenceStatus.PRESENCE_STATUS_ONLINE, "online"],
  [PresenceStatus.PRESENCE_STATUS_AWAY, "away"],
  [PresenceStatus.PRESENCE_STATUS_BUSY, "busy"],
  [PresenceStatus.PRESENCE_STATUS_INVISIBLE, "invisible"],
  [PresenceStatus.PRESENCE_STATUS_OFFLINE, "offline"],
]);
const STATUS_ENUM = new Map([...STATUS].map(([value, name]) => [name, value]));

function infoOf(p: AccountPresence): PresenceInfo {
  return {
    accountId: p.accountId,
    status: STATUS.get(p.status) ?? "offline",
    customText: p.customText,
    lastSeenMs: p.lastSeenMs,
  };
}

/** The read targets: our own account needs no capability, others the one they sent us. */
function targetsOf(book: PresenceBook, me: string, accountIds: readonly string[]) {
  return accountIds.map((accountId) => ({
    accountId,
    capability: accountId === me
      ? new Uint8Array()
      : book.received.get(accountId)?.capability ?? new Uint8Array(),
  }));
}

export async function setPresence(
  api: Api,
  status: PresenceStatusName,
  customText: string,
): Promise<void> {
  const service = api.transport.presence;
  await api.authed(service.setPresence.bind(service), {
    status: STATUS_ENUM.get(status)!,
    customText,
  }, { idempotent: true });
}

/** Marks this device active; returns when to send the next one (ms). */
export async function heartbeat(api: Api): Promise<number> {
  const service = api.transport.presence;
  const answer = await api.authed(service.heartbeat.bind(service), {}, { idempotent: true });
  return answer.intervalMs;
}

export async function registerGrant(
  api: Api,
  grantHash: Uint8Array,
  lastSeen: boolean,
): Promise<void> {
  const service = api.transport.presence;
  const level = lastSeen
    ? PresenceLevel.PRESENCE_LEVEL_LAST_SEEN
    : PresenceLevel.PRESENCE_LEVEL_ONLINE;
  await api.authed(service.grantPresence.bind(service), {
    grants: [{ grantHash, level, createdAtMs: 0 }],
  }, { idempotent: true });
}

export async function revokeGrants(api: Api, grantHashes: Uint8Array[]): Promise<number> {
  const service = api.transport.presence;
  const answer = await api.authed(service.revokePresence.bind(service), {
    grantHashes,
    all: false,
  }, { idempotent: true });
  return answer.revoked;
}

export async function readPresence(
  api: Api,
  book: PresenceBook,
  me: string,
  accountIds: readonly string[],
): Promise<PresenceInfo[]> {
  const service = api.transport.presence;
  const answer = await api.authed(service.getPresence.bind(service), {
    targets: targetsOf(book, me, accountIds),
  }, { idempotent: true });
  return answer.presences.map(infoOf);
}

export interface PresenceWatch {
  close(): void;
}

/** How long to wait before watching again after the stream ended (token expiry, restarts). */
const REWATCH_MS = 1_000;

/**
 * Watches accounts: `onChange` gets a snapshot entry per account, then every change. The
 * stream is opened again after it ends (a refreshed token, a restarted server) until closed.
 */
export function watchPresence(
  api: Api,
  book: PresenceBook,
  me: string,
  accountIds: readonly string[],
  onChange: (presence: PresenceInfo) => void,
  onError: (error: Error) => void = () => {},
): PresenceWatch {
  let closed = false;
  let cancel = () => {};
  let timer: ReturnType<typeof setTimeout> | undefined;
  const open = async () => {
    if (closed) return;
    try {
      const token = await api.tokens.accessToken();
      const stream = api.transport.presence.watchPresence(
        { targets: targetsOf(book, me, accountIds) },
        bearer(token),
      );
      cancel = () => stream.cancel();
      stream.on("data", (m: WatchPresenceResponse) => {
        if (m.presence) onChange(infoOf(m.presence));
      });
      stream.on("error", (error: unknown) => {
        if (closed) return;
        const failure = fromServiceError(error);
        if (failure.code === "TOKEN_EXPIRED") void api.tokens.renew(token).catch(() => {});
        else onError(failure);
        timer = setTimeout(open, REWATCH_MS);
      });
      stream.on("end", () => {
        if (!closed) timer = setTimeout(open, REWATCH_MS);
      });
    } catch (error) {
      onError(error as Error);
      if (!closed) timer = setTimeout(open, REWATCH_MS);
    }
  };
  void open();
  return {
    close: () => {
      closed = true;
      clearTimeout(timer);
      cancel();
    },
  };
}
