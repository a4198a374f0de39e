/**
 * PresenceService: the caller's own status and heartbeats, grant hashes it registers and
 * revokes, and reads of other accounts with the capabilities their owners sent the caller.
 * A read without a valid grant gets the hidden presence, never an error: nobody can tell an
 * account that did not allow them from an invisible or unknown one (presence.proto).
 */

import type * as grpc from "@grpc/grpc-js";
import { status as grpcStatus } from "@grpc/grpc-js";
import {
  GuardynError,
  invalidArgument,
  resourceExhausted,
  unauthenticated,
} from "../platform/errors.ts";
import { type CallContext, type Handlers, requireAuth } from "../platform/grpc_server.ts";
import type { RateLimiter } from "../platform/rate_limit.ts";
import type { StreamSlots } from "../kit/stream_slots.ts";
import {
  type PresenceLevel,
  PresenceLevel as Level,
  type PresenceServiceService,
  type PresenceTarget,
  type WatchPresenceRequest,
  type WatchPresenceResponse,
} from "../../proto/gen/guardyn/v1/presence.ts";
import type { GrantLevel, PresenceGrantRecord, PresenceStore } from "../store/presence_ports.ts";
import {
  checkStatus,
  GRANT_HASH_BYTES,
  GrantLimitError,
  PRESENCE_GRANT_BATCH_MAX,
  PRESENCE_LIST_MAX,
} from "../store/presence_rules.ts";
import { PRESENCE_CAPABILITY_BYTES, presenceGrantHash } from "../../crypto/presence_grant.ts";
import { chosenStatusOf, type ReadRight, toAccountPresence, viewOf } from "./presence_view.ts";
import type { PresenceHub, WatchTarget } from "./watch_hub.ts";
import type { PresenceSettings } from "./settings.ts";

/** Accounts per GetPresence and per WatchPresence (the contract's bounds). */
export const GET_MAX = 100;
export const WATCH_MAX = 200;
/** Bytes waiting for a slow watcher before its stream is ended (it can watch again). */
export const WATCH_BUFFER_MAX = 64 * 1024;
const ACCOUNT_ID = /^[A-Za-z0-9_-]{1,128}$/;

export interface PresenceDeps {
  store: PresenceStore;
  hub: PresenceHub;
  settings: PresenceSettings;
  slots: StreamSlots;
  limits: { updates: RateLimiter; reads: RateLimiter; heartbeats: RateLimiter };
  now: () => number;
  /** When the stream's access token expires (ms since the epoch), if known. */
  tokenExpiryMs: (ctx: CallContext) => number | undefined;
  onWatchesChanged?: (open: number) => void;
}

const LEVELS = new Map<PresenceLevel, GrantLevel>([
  [Level.PRESENCE_LEVEL_ONLINE, "online"],
  [Level.PRESENCE_LEVEL_LAST_SEEN, "last-seen"],
]);
const LEVEL_ENUMS = new Map([...LEVELS].map(([value, name]) => [name, value]));

export function presenceHandlers(deps: PresenceDeps): Handlers<typeof PresenceServiceService> {
  const { store, hub, settings } = deps;
  const windowMs = settings.onlineWindowMs;

  return {
    async setPresence(request, ctx) {
      const auth = requireAuth(ctx);
      const status = chosenStatusOf(request.status);
      if (!status) throw invalidArgument("status: ONLINE, AWAY, BUSY, INVISIBLE or OFFLINE");
      try {
        checkStatus(status, request.customText);
      } catch (error) {
        throw invalidArgument(`custom_text: ${(error as Error).message}`);
      }
      deps.limits.updates.take(deviceKey(auth), "SetPresence");
      const before = await store.setStatus(auth.accountId, status, request.customText);
      if (before?.status !== status || before.customText !== request.customText) {
        hub.publish({
          kind: "state",
          state: {
            accountId: auth.accountId,
            status,
            customText: request.customText,
            lastActiveMs: before?.lastActiveMs ?? 0,
          },
        });
      }
      return {};
    },

    async heartbeat(_request, ctx) {
      const auth = requireAuth(ctx);
      deps.limits.heartbeats.take(deviceKey(auth), "Heartbeat");
      const now = deps.now();
      const before = await store.touch(auth.accountId, now);
      // Only a change is told: an account that was online stays online without a broadcast.
      const wasOnline = before !== undefined && before.lastActiveMs + windowMs > now;
      if (!wasOnline) {
        hub.publish({
          kind: "state",
          state: {
            accountId: auth.accountId,
            status: before?.status ?? "online",
            customText: before?.customText ?? "",
            lastActiveMs: now,
          },
        });
      }
      return { intervalMs: settings.heartbeatIntervalMs, onlineWindowMs: windowMs };
    },

    async getPresence(request, ctx) {
      const auth = requireAuth(ctx);
      const targets = readTargets(request.targets, GET_MAX);
      deps.limits.reads.take(deviceKey(auth), "GetPresence");
      const rights = await rightsOf(store, auth.accountId, targets);
      const states = await store.states(rights.filter((r) => r.right).map((r) => r.accountId));
      const now = deps.now();
      return {
        presences: rights.map((r) =>
          toAccountPresence(r.accountId, viewOf(states.get(r.accountId), r.right, now, windowMs))
        ),
      };
    },

    watchPresence(request, call, ctx) {
      return serveWatch(request, call, ctx, deps);
    },

    async grantPresence(request, ctx) {
      const auth = requireAuth(ctx);
      const n = request.grants.length;
      if (n === 0 || n > PRESENCE_GRANT_BATCH_MAX) {
        throw invalidArgument(`grants: 1..${PRESENCE_GRANT_BATCH_MAX} per call`);
      }
      const now = deps.now();
      const records: PresenceGrantRecord[] = request.grants.map((g, i) => {
        if (g.grantHash.byteLength !== GRANT_HASH_BYTES) {
          throw invalidArgument(`grants[${i}].grant_hash: ${GRANT_HASH_BYTES} bytes`);
        }
        const level = LEVELS.get(g.level);
        if (!level) throw invalidArgument(`grants[${i}].level: ONLINE or LAST_SEEN`);
        return { hash: g.grantHash, level, createdAtMs: now };
      });
      deps.limits.updates.take(deviceKey(auth), "GrantPresence");
      try {
        await store.grant(auth.accountId, records, settings.grantsMax);
      } catch (error) {
        if (error instanceof GrantLimitError) throw resourceExhausted(error.message);
        throw error;
      }
      // A hash registered again may have changed level: watchers using it are checked again.
      hub.publish({ kind: "grants", ownerId: auth.accountId });
      return {};
    },

    async revokePresence(request, ctx) {
      const auth = requireAuth(ctx);
      if (request.grantHashes.length > PRESENCE_GRANT_BATCH_MAX) {
        throw invalidArgument(`grant_hashes: at most ${PRESENCE_GRANT_BATCH_MAX} per call`);
      }
      if (request.all && request.grantHashes.length > 0) {
        throw invalidArgument("give grant_hashes or all, not both");
      }
      request.grantHashes.forEach((hash, i) => {
        if (hash.byteLength !== GRANT_HASH_BYTES) {
          throw invalidArgument(`grant_hashes[${i}]: ${GRANT_HASH_BYTES} bytes`);
        }
      });
      deps.limits.updates.take(deviceKey(auth), "RevokePresence");
      const removed = await store.revoke(auth.accountId, request.all ? "all" : request.grantHashes);
      if (removed.length > 0) hub.publish({ kind: "grants", ownerId: auth.accountId });
      return { revoked: removed.length };
    },

    async listPresenceGrants(request, ctx) {
      const auth = requireAuth(ctx);
      const limit = request.limit === 0 ? PRESENCE_LIST_MAX : request.limit;
      if (limit > PRESENCE_LIST_MAX) throw invalidArgument(`limit: 1..${PRESENCE_LIST_MAX}`);
      if (request.after.byteLength !== 0 && request.after.byteLength !== GRANT_HASH_BYTES) {
        throw invalidArgument(`after: empty or ${GRANT_HASH_BYTES} bytes`);
      }
      deps.limits.reads.take(deviceKey(auth), "ListPresenceGrants");
      // One more than asked tells whether another page follows.
      const page = await store.listGrants(auth.accountId, request.after, limit + 1);
      return {
        grants: page.slice(0, limit).map((g) => ({
          grantHash: g.hash,
          level: LEVEL_ENUMS.get(g.level)!,
          createdAtMs: g.createdAtMs,
        })),
        more: page.length > limit,
      };
    },
  };
}

function deviceKey(auth: { accountId: string; deviceId: string }): string {
  return `${auth.accountId}/${auth.deviceId}`;
}

interface CheckedTarget {
  accountId: string;
  capability: Uint8Array;
}

/** Distinct targets (the first entry of an account wins), checked against the bounds. */
function readTargets(targets: readonly PresenceTarget[], max: number): CheckedTarget[] {
  if (targets.length === 0 || targets.length > max) {
    throw invalidArgument(`targets: 1..${max} accounts`);
  }
  const seen = new Map<string, CheckedTarget>();
  targets.forEach((t, i) => {
    if (!ACCOUNT_ID.test(t.accountId)) {
      throw invalidArgument(`targets[${i}].account_id: 1..128 characters of A-Za-z0-9_-`);
    }
    const size = t.capability.byteLength;
    if (size !== 0 && size !== PRESENCE_CAPABILITY_BYTES) {
      throw invalidArgument(
        `targets[${i}].capability: empty or ${PRESENCE_CAPABILITY_BYTES} bytes`,
      );
    }
    if (!seen.has(t.accountId)) {
      seen.set(t.accountId, { accountId: t.accountId, capability: t.capability });
    }
  });
  return [...seen.values()];
}

/** The caller's right to each target: its own account, a registered grant, or none. */
async function rightsOf(
  store: PresenceStore,
  callerId: string,
  targets: readonly CheckedTarget[],
): Promise<WatchTarget[]> {
  const granted = targets
    .filter((t) => t.accountId !== callerId && t.capability.byteLength > 0)
    .map((t) => ({ ownerId: t.accountId, hash: presenceGrantHash(t.capability, callerId) }));
  const levels = granted.length > 0 ? await store.grantLevels(granted) : [];
  const byOwner = new Map(granted.map((g, i) => [g.ownerId, { hash: g.hash, level: levels[i] }]));
  return targets.map((t): WatchTarget => {
    if (t.accountId === callerId) return { accountId: t.accountId, right: "owner" };
    const grant = byOwner.get(t.accountId);
    // The hash is kept even without a grant: an owner who grants it later is seen at once.
    return grant
      ? { accountId: t.accountId, right: grant.level as ReadRight, grantHash: grant.hash }
      : { accountId: t.accountId, right: undefined };
  });
}

type WatchCall = grpc.ServerWritableStream<WatchPresenceRequest, WatchPresenceResponse>;

async function serveWatch(
  request: WatchPresenceRequest,
  call: WatchCall,
  ctx: CallContext,
  deps: PresenceDeps,
): Promise<void> {
  const auth = requireAuth(ctx);
  const targets = readTargets(request.targets, WATCH_MAX);
  deps.limits.reads.take(deviceKey(auth), "WatchPresence");
  const release = deps.slots.take(deviceKey(auth));
  deps.onWatchesChanged?.(deps.slots.size);
  let unwatch = () => {};
  try {
    await new Promise<void>((resolve, reject) => {
      let finished = false;
      const finish = (error?: unknown) => {
        if (finished) return;
        finished = true;
        clearTimeout(expiry);
        unwatch();
        if (error === undefined) resolve();
        else reject(error);
      };
      const expiresAt = deps.tokenExpiryMs(ctx);
      const expiry = expiresAt === undefined ? undefined : setTimeout(
        () =>
          finish(unauthenticated("TOKEN_EXPIRED", "the access token of this stream has expired")),
        Math.max(0, expiresAt - deps.now()),
      );
      ctx.signal.addEventListener("abort", () => finish(ctx.signal.reason), { once: true });
      const send = (presence: WatchPresenceResponse["presence"]) => {
        if (finished) return;
        call.write({ presence });
        // A watcher that does not read must not hold the instance's memory.
        if (call.writableLength > WATCH_BUFFER_MAX) {
          finish(
            new GuardynError(
              grpcStatus.RESOURCE_EXHAUSTED,
              "LIMIT_EXCEEDED",
              `the watcher is not reading (over ${WATCH_BUFFER_MAX} bytes waiting); watch again`,
            ),
          );
        }
      };
      rightsOf(deps.store, auth.accountId, targets)
        .then((rights) => deps.hub.watch(rights, send))
        .then(({ snapshot, release }) => {
          unwatch = release;
          if (finished) return release();
          for (const presence of snapshot) send(presence);
        })
        .catch(finish);
    });
  } finally {
    release();
    deps.onWatchesChanged?.(deps.slots.size);
  }
}
