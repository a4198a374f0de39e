/** Limits and timings of the groups service (services/groups), from the environment. */

import type { PlatformConfig } from "../platform/config.ts";
import type { EnvReader } from "../platform/env.ts";

export interface GroupSettings {
  /** How long accepted commits are kept for members that catch up (FetchCommits). */
  commitRetentionSeconds: number;
  /** How long an unacknowledged group envelope waits in a mailbox. */
  mailboxTtlSeconds: number;
  /** How long the idempotency record of a group send is kept. */
  idempotencyWindowSeconds: number;
  /** SendGroupMessage calls per sender device. */
  sendBurst: number;
  sendPerSecond: number;
  /** SendCommit and LeaveGroup calls per sender device. */
  commitBurst: number;
  commitsPerMinute: number;
  /** Accepted commits per group (a busy group cannot monopolise an instance). */
  groupCommitsPerMinute: number;
  /** Group messages per group and second, from all members. */
  groupMessagesPerSecond: number;
  /** CreateGroup calls per device and hour. */
  createsPerHour: number;
  /** How often expired commits are purged (SQLite; CQL rows expire by TTL). */
  purgeIntervalMs: number;
}

export function readGroupSettings(read: EnvReader, _platform: PlatformConfig): GroupSettings {
  return {
    commitRetentionSeconds: read.int(
      "GROUPS_COMMIT_RETENTION_SECONDS",
      30 * 86_400,
      60,
      365 * 86_400,
    ),
    mailboxTtlSeconds: read.int("GROUPS_MAILBOX_TTL_SECONDS", 30 * 86_400, 60, 90 * 86_400),
    idempotencyWindowSeconds: read.int(
      "GROUPS_IDEMPOTENCY_WINDOW_SECONDS",
      86_400,
      60,
      90 * 86_400,
    ),
    sendBurst: read.int("GROUPS_SEND_BURST", 50, 1, 1_000_000),
    sendPerSecond: read.int("GROUPS_SEND_PER_SECOND", 20, 1, 1_000_000),
    commitBurst: read.int("GROUPS_COMMIT_BURST", 20, 1, 1_000_000),
    commitsPerMinute: read.int("GROUPS_COMMITS_PER_MINUTE", 60, 1, 1_000_000),
    groupCommitsPerMinute: read.int("GROUPS_GROUP_COMMITS_PER_MINUTE", 120, 1, 1_000_000),
    groupMessagesPerSecond: read.int("GROUPS_GROUP_MESSAGES_PER_SECOND", 100, 1, 1_000_000),
    createsPerHour: read.int("GROUPS_CREATES_PER_HOUR", 60, 1, 1_000_000),
    purgeIntervalMs: read.int("GROUPS_PURGE_INTERVAL_MS", 60_000, 100, 86_400_000),
  };
}
