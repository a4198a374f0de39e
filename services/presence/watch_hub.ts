/**
 * The presence watchers of one instance and the accounts they watch. Changes arrive from the
 * bus's "presence" broadcast (every instance gets every change), are coalesced per account for
 * `coalesceMs`, and each watcher is sent a view only when what it may see changed. Heartbeats
 * that change nothing are not broadcast, so the hub reads watched accounts back from the store:
 * when an online account's window runs out (it turns OFFLINE unless a heartbeat moved it) and
 * at least every `resyncMs` (a lost broadcast heals by itself).
 */

import type { Bus, Subscription } from "../bus/port.ts";
import type { Logger } from "../platform/log.ts";
import type { AccountPresence } from "../../proto/gen/guardyn/v1/presence.ts";
import type { PresenceState, PresenceStore } from "../store/presence_ports.ts";
import { PRESENCE_READ_MAX } from "../store/presence_rules.ts";
import { decodeChange, encodeChange, type PresenceChange } from "./presence_changes.ts";
import {
  onlineUntilMs,
  type PresenceView,
  type ReadRight,
  sameView,
  toAccountPresence,
  viewOf,
} from "./presence_view.ts";

export interface HubDeps {
  store: PresenceStore;
  bus: Pick<Bus, "broadcast" | "onBroadcast">;
  now: () => number;
  windowMs: number;
  coalesceMs: number;
  /** Every watched account is read back from the store at least this often. */
  resyncMs: number;
  /** How often due accounts are looked for. */
  sweepMs: number;
  log: Logger;
  /** Counts views written to watchers. */
  onSent?: (count: number) => void;
  /**
   * How long a change took from reaching this instance to its last write to a watcher here
   * (coalescing wait included), once per changed account with watchers.
   */
  onFanOut?: (seconds: number) => void;
}

export interface WatchTarget {
  accountId: string;
  right: ReadRight;
  /** The grant hash the right came from, to check again when the owner's grants change. */
  grantHash?: Uint8Array;
}

/** Receives one changed presence; the stream decides what to do when the client is slow. */
export type WatchSink = (presence: AccountPresence) => void;

interface Target {
  sink: WatchSink;
  accountId: string;
  right: ReadRight;
  grantHash: Uint8Array | undefined;
  last: PresenceView;
}

interface Entry {
  state: PresenceState | undefined;
  targets: Set<Target>;
  readAtMs: number;
  untilMs: number | undefined;
}

/** Broadcast states remembered this long, for watches whose first read raced them. */
const RECENT_MS = 10_000;
const RECENT_MAX = 50_000;
/** Accounts read back per sweep at most (the rest wait for the next one). */
const SWEEP_MAX = 2_000;

export class PresenceHub {
  readonly #entries = new Map<string, Entry>();
  /** Changed accounts, with when each first changed since the last flush (performance.now). */
  readonly #dirty = new Map<string, number>();
  readonly #recent = new Map<string, { state: PresenceState; atMs: number }>();
  readonly #outgoing = new Map<string, PresenceChange>();
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  #sendTimer: ReturnType<typeof setTimeout> | undefined;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #sweeping = false;
  #subscription: Subscription | undefined;

  constructor(private readonly deps: HubDeps) {}

  async start(): Promise<void> {
    this.#subscription = await this.deps.bus.onBroadcast("presence", (data) => {
      const change = decodeChange(data);
      if (change) this.#apply(change);
      else this.deps.log.warn("presence broadcast dropped: not a presence change");
    });
    this.#sweeper = setInterval(() => void this.#sweep(), this.deps.sweepMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.#sweeper);
    clearTimeout(this.#flushTimer);
    await this.#send();
    await this.#subscription?.unsubscribe();
  }

  /** Accounts watched on this instance. */
  get watchedAccounts(): number {
    return this.#entries.size;
  }

  /**
   * Registers a watch over distinct accounts (at most PRESENCE_READ_MAX) and returns its
   * snapshot; `release` removes it.
   */
  async watch(
    targets: readonly WatchTarget[],
    sink: WatchSink,
  ): Promise<{ snapshot: AccountPresence[]; release: () => void }> {
    const startedAtMs = this.deps.now();
    const unknown = targets.map((t) => t.accountId).filter((id) => !this.#entries.has(id));
    const states = unknown.length > 0 ? await this.deps.store.states(unknown) : new Map();
    const now = this.deps.now();
    const made = targets.map((t) => {
      const entry = this.#entryFor(t.accountId, states, startedAtMs, now);
      const target: Target = {
        sink,
        accountId: t.accountId,
        right: t.right,
        grantHash: t.grantHash,
        last: viewOf(entry.state, t.right, now, this.deps.windowMs),
      };
      entry.targets.add(target);
      return target;
    });
    let released = false;
    return {
      snapshot: made.map((t) => toAccountPresence(t.accountId, t.last)),
      release: () => {
        if (released) return;
        released = true;
        for (const target of made) {
          const entry = this.#entries.get(target.accountId);
          entry?.targets.delete(target);
          if (entry && entry.targets.size === 0) this.#entries.delete(target.accountId);
        }
      },
    };
  }

  /** Tells every instance (this one at once) about a change made here. */
  publish(change: PresenceChange): void {
    this.#apply(change);
    const key = change.kind === "state" ? `s:${change.state.accountId}` : `g:${change.ownerId}`;
    this.#outgoing.set(key, change);
    this.#sendTimer ??= setTimeout(() => void this.#send(), this.deps.coalesceMs);
  }

  async #send(): Promise<void> {
    clearTimeout(this.#sendTimer);
    this.#sendTimer = undefined;
    const changes = [...this.#outgoing.values()];
    this.#outgoing.clear();
    await Promise.all(
      changes.map((change) =>
        this.deps.bus.broadcast("presence", encodeChange(change)).catch((error) =>
          // Other instances heal at their next read-back of the account (resyncMs).
          this.deps.log.warn("presence broadcast failed", { error })
        )
      ),
    );
  }

  #entryFor(
    accountId: string,
    states: Map<string, PresenceState>,
    startedAtMs: number,
    now: number,
  ): Entry {
    const existing = this.#entries.get(accountId);
    if (existing) return existing;
    // A change broadcast while the store was read is newer than what the read returned.
    const recent = this.#recent.get(accountId);
    const state = recent && recent.atMs >= startedAtMs
      ? newer(states.get(accountId), recent.state)
      : states.get(accountId);
    const entry: Entry = {
      state,
      targets: new Set(),
      readAtMs: now,
      untilMs: onlineUntilMs(state, now, this.deps.windowMs),
    };
    this.#entries.set(accountId, entry);
    return entry;
  }

  #apply(change: PresenceChange): void {
    if (change.kind === "grants") {
      void this.#recheckGrants(change.ownerId).catch((error) =>
        this.deps.log.warn("presence grants re-check failed", { error })
      );
      return;
    }
    const { state } = change;
    const now = this.deps.now();
    if (this.#recent.size >= RECENT_MAX) this.#recent.clear();
    this.#recent.set(state.accountId, { state, atMs: now });
    const entry = this.#entries.get(state.accountId);
    if (!entry) return;
    entry.state = newer(entry.state, state);
    entry.untilMs = onlineUntilMs(entry.state, now, this.deps.windowMs);
    this.#markDirty(state.accountId);
  }

  /** The owner's grants changed: watchers holding a grant get their right read again. */
  async #recheckGrants(ownerId: string): Promise<void> {
    const entry = this.#entries.get(ownerId);
    if (!entry) return;
    const granted = [...entry.targets].filter((t) => t.grantHash !== undefined);
    for (let i = 0; i < granted.length; i += PRESENCE_READ_MAX) {
      const batch = granted.slice(i, i + PRESENCE_READ_MAX);
      const levels = await this.deps.store.grantLevels(
        batch.map((t) => ({ ownerId, hash: t.grantHash! })),
      );
      batch.forEach((target, index) => target.right = levels[index]);
    }
    this.#markDirty(ownerId);
  }

  #markDirty(accountId: string): void {
    if (!this.#dirty.has(accountId)) this.#dirty.set(accountId, performance.now());
    this.#flushTimer ??= setTimeout(() => this.#flush(), this.deps.coalesceMs);
  }

  #flush(): void {
    this.#flushTimer = undefined;
    const now = this.deps.now();
    let sent = 0;
    for (const [accountId, since] of this.#dirty) {
      const entry = this.#entries.get(accountId);
      if (!entry) continue;
      const sentBefore = sent;
      // At most three views per account (owner, each grant level, hidden): compute each once.
      const views = new Map<ReadRight, PresenceView>();
      for (const target of entry.targets) {
        let view = views.get(target.right);
        if (!view) {
          view = viewOf(entry.state, target.right, now, this.deps.windowMs);
          views.set(target.right, view);
        }
        if (sameView(view, target.last)) continue;
        target.last = view;
        target.sink(toAccountPresence(accountId, view));
        sent++;
      }
      if (sent > sentBefore) this.deps.onFanOut?.((performance.now() - since) / 1000);
    }
    this.#dirty.clear();
    if (sent > 0) this.deps.onSent?.(sent);
  }

  /** Reads back accounts whose window ran out or whose last read is older than resyncMs. */
  async #sweep(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      const now = this.deps.now();
      for (const [id, recent] of this.#recent) {
        if (now - recent.atMs > RECENT_MS) this.#recent.delete(id);
      }
      const due: string[] = [];
      for (const [accountId, entry] of this.#entries) {
        const expired = entry.untilMs !== undefined && entry.untilMs <= now;
        if (expired || now - entry.readAtMs >= this.deps.resyncMs) due.push(accountId);
        if (due.length >= SWEEP_MAX) break;
      }
      for (let i = 0; i < due.length; i += PRESENCE_READ_MAX) {
        const batch = due.slice(i, i + PRESENCE_READ_MAX);
        const states = await this.deps.store.states(batch);
        const readAt = this.deps.now();
        for (const accountId of batch) {
          const entry = this.#entries.get(accountId);
          if (!entry) continue;
          entry.state = newer(entry.state, states.get(accountId), true);
          entry.readAtMs = readAt;
          entry.untilMs = onlineUntilMs(entry.state, readAt, this.deps.windowMs);
          this.#markDirty(accountId);
        }
      }
    } catch (error) {
      this.deps.log.warn("presence read-back failed; retrying at the next sweep", { error });
    } finally {
      this.#sweeping = false;
    }
  }
}

/**
 * Merges a newer report into what is known: the status and text as reported, the activity
 * never moving back. A store read that finds nothing (`fromStore`) means the account is gone.
 */
function newer(
  known: PresenceState | undefined,
  next: PresenceState | undefined,
  fromStore = false,
): PresenceState | undefined {
  if (!next) return fromStore ? undefined : known;
  if (!known) return next;
  return { ...next, lastActiveMs: Math.max(known.lastActiveMs, next.lastActiveMs) };
}
