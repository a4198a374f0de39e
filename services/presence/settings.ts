/** Settings of the presence service (services/presence), from the environment. */

import type { EnvReader } from "../platform/env.ts";

export interface PresenceSettings {
  /** An account counts as online this long after its last heartbeat. */
  onlineWindowMs: number;
  /** What Heartbeat answers: send the next one within this many milliseconds. */
  heartbeatIntervalMs: number;
  /** Grants one account may hold. */
  grantsMax: number;
  /** WatchPresence streams open at once on one instance. */
  maxWatches: number;
  /** WatchPresence streams one device may hold open at once. */
  watchesPerDevice: number;
  /** Changes of one account within this window reach watchers as one. */
  coalesceMs: number;
  /** Calls per device and minute of SetPresence, grants and revokes (each). */
  updatesPerMinute: number;
}

export function readPresenceSettings(read: EnvReader): PresenceSettings {
  const onlineWindowMs = read.int("PRESENCE_ONLINE_WINDOW_MS", 90_000, 2_000, 3_600_000);
  const heartbeatIntervalMs = read.int("PRESENCE_HEARTBEAT_INTERVAL_MS", 30_000, 500, 1_200_000);
  // Two heartbeats may be lost before a connected device looks offline.
  if (heartbeatIntervalMs * 2 >= onlineWindowMs) {
    read.problems.push(
      "PRESENCE_HEARTBEAT_INTERVAL_MS must be under half of PRESENCE_ONLINE_WINDOW_MS",
    );
  }
  return {
    onlineWindowMs,
    heartbeatIntervalMs,
    grantsMax: read.int("PRESENCE_GRANTS_MAX", 10_000, 1, 100_000),
    maxWatches: read.int("PRESENCE_MAX_WATCHES", 20_000, 1, 1_000_000),
    watchesPerDevice: read.int("PRESENCE_WATCHES_PER_DEVICE", 4, 1, 100),
    coalesceMs: read.int("PRESENCE_COALESCE_MS", 50, 0, 5_000),
    updatesPerMinute: read.int("PRESENCE_UPDATES_PER_MINUTE", 30, 1, 10_000),
  };
}
