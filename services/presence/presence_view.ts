/**
 * What a reader sees of an account's presence: pure, from the stored state, the reader's right
 * (owner, a grant's level, or none) and the clock. Everything without a right looks the same
 * as an unknown account, an INVISIBLE one or a revoked grant: the hidden presence.
 */

import { AccountPresence, PresenceStatus } from "../../proto/gen/guardyn/v1/presence.ts";
import type { ChosenStatus, GrantLevel, PresenceState } from "../store/presence_ports.ts";

/** The reader's right to an account: its owner, a grant's level, or nothing. */
export type ReadRight = "owner" | GrantLevel | undefined;

export interface PresenceView {
  status: PresenceStatus;
  customText: string;
  lastSeenMs: number;
}

export const HIDDEN: PresenceView = Object.freeze({
  status: PresenceStatus.PRESENCE_STATUS_OFFLINE,
  customText: "",
  lastSeenMs: 0,
});

const STATUS_OF: Record<ChosenStatus, PresenceStatus> = {
  online: PresenceStatus.PRESENCE_STATUS_ONLINE,
  away: PresenceStatus.PRESENCE_STATUS_AWAY,
  busy: PresenceStatus.PRESENCE_STATUS_BUSY,
  invisible: PresenceStatus.PRESENCE_STATUS_INVISIBLE,
  offline: PresenceStatus.PRESENCE_STATUS_OFFLINE,
};

const CHOSEN_OF = new Map<PresenceStatus, ChosenStatus>(
  Object.entries(STATUS_OF).map(([name, value]) => [value, name as ChosenStatus]),
);

/** The chosen status of a SetPresence request; undefined for UNSPECIFIED or unknown values. */
export function chosenStatusOf(status: PresenceStatus): ChosenStatus | undefined {
  return CHOSEN_OF.get(status);
}

export const MINUTE_MS = 60_000;

export function isOnline(state: PresenceState | undefined, nowMs: number, windowMs: number) {
  return state !== undefined && state.lastActiveMs > 0 && state.lastActiveMs + windowMs > nowMs;
}

/** When an online account turns offline unless it heartbeats again; undefined when offline. */
export function onlineUntilMs(
  state: PresenceState | undefined,
  nowMs: number,
  windowMs: number,
): number | undefined {
  return isOnline(state, nowMs, windowMs) ? state!.lastActiveMs + windowMs : undefined;
}

export function viewOf(
  state: PresenceState | undefined,
  right: ReadRight,
  nowMs: number,
  windowMs: number,
): PresenceView {
  if (right === undefined || state === undefined) return HIDDEN;
  const owner = right === "owner";
  // INVISIBLE and "appear offline" show watchers nothing at all, not even a last-seen time.
  if (!owner && (state.status === "invisible" || state.status === "offline")) return HIDDEN;
  if (isOnline(state, nowMs, windowMs) && state.status !== "offline") {
    const text = state.status === "invisible" ? "" : state.customText;
    return { status: STATUS_OF[state.status], customText: text, lastSeenMs: 0 };
  }
  const lastSeen = owner || right === "last-seen"
    ? Math.floor(state.lastActiveMs / MINUTE_MS) * MINUTE_MS
    : 0;
  return { status: PresenceStatus.PRESENCE_STATUS_OFFLINE, customText: "", lastSeenMs: lastSeen };
}

export function sameView(a: PresenceView, b: PresenceView): boolean {
  return a.status === b.status && a.customText === b.customText && a.lastSeenMs === b.lastSeenMs;
}

export function toAccountPresence(accountId: string, view: PresenceView): AccountPresence {
  return { accountId, ...view };
}
