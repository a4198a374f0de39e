/**
 * What instances tell each other over the bus's "presence" broadcast: an account's new state,
 * or that an owner's grants changed (every instance re-checks the grants its watchers use).
 * JSON, validated on the way in: a broken or foreign body is dropped, never applied.
 */

import type { PresenceState } from "../store/presence_ports.ts";
import { checkStatus, checkTime } from "../store/presence_rules.ts";
import { checkAccountId } from "../store/push_rules.ts";

export type PresenceChange =
  | { kind: "state"; state: PresenceState }
  | { kind: "grants"; ownerId: string };

export function encodeChange(change: PresenceChange): Uint8Array {
  const body = change.kind === "state"
    ? {
      k: "s",
      a: change.state.accountId,
      s: change.state.status,
      t: change.state.customText,
      l: change.state.lastActiveMs,
    }
    : { k: "g", a: change.ownerId };
  return new TextEncoder().encode(JSON.stringify(body));
}

/** The change, or undefined for a body that is not one. */
export function decodeChange(data: Uint8Array): PresenceChange | undefined {
  try {
    const v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
    checkAccountId(v.a);
    if (v.k === "g") return { kind: "grants", ownerId: v.a };
    if (v.k !== "s") return undefined;
    checkStatus(v.s, v.t);
    checkTime(v.l);
    return {
      kind: "state",
      state: { accountId: v.a, status: v.s, customText: v.t, lastActiveMs: v.l },
    };
  } catch {
    return undefined;
  }
}
