/** Limits and timings of the media service (services/media), from the environment. */

import type { PlatformConfig } from "../platform/config.ts";
import type { EnvReader } from "../platform/env.ts";
import { defaultTurnUrls, TURN_TTL_MAX_SECONDS } from "./turn_credentials.ts";

export interface MediaSettings {
  /** Largest ciphertext one blob may have. */
  maxBlobBytes: number;
  /** Bytes one account's blobs may hold at once. */
  quotaBytes: number;
  /** An upload not completed by then is discarded. */
  uploadDeadlineSeconds: number;
  /** A completed blob is deleted this long after completion. */
  retentionSeconds: number;
  /** CreateUpload calls per device and hour. */
  uploadsPerHour: number;
  /** How often expired blobs and abandoned uploads are swept. */
  sweepIntervalMs: number;
  turn?: { secret: string; urls: string[]; ttlSeconds: number };
  /** GetTurnCredentials calls per device and minute. */
  turnPerMinute: number;
}

export function readMediaSettings(read: EnvReader, platform: PlatformConfig): MediaSettings {
  const secret = read.optional("TURN_SHARED_SECRET");
  if (secret !== undefined && secret.length < 16) {
    read.problems.push("TURN_SHARED_SECRET must have at least 16 characters");
  }
  const urls = read.list("TURN_URLS", defaultTurnUrls(platform.hosts.turn));
  return {
    maxBlobBytes: read.int("MEDIA_MAX_BLOB_BYTES", 100 * 1024 * 1024, 1024, 4 * 1024 ** 3),
    quotaBytes: read.int("MEDIA_QUOTA_BYTES", 1024 ** 3, 1024, 1024 ** 4),
    uploadDeadlineSeconds: read.int("MEDIA_UPLOAD_DEADLINE_SECONDS", 86_400, 60, 7 * 86_400),
    retentionSeconds: read.int("MEDIA_RETENTION_SECONDS", 30 * 86_400, 60, 365 * 86_400),
    uploadsPerHour: read.int("MEDIA_UPLOADS_PER_HOUR", 600, 1, 1_000_000),
    sweepIntervalMs: read.int("MEDIA_SWEEP_INTERVAL_MS", 60_000, 100, 86_400_000),
    ...(secret === undefined ? {} : {
      turn: {
        secret,
        urls,
        ttlSeconds: read.int("TURN_CREDENTIAL_TTL_SECONDS", 6 * 3600, 60, TURN_TTL_MAX_SECONDS),
      },
    }),
    turnPerMinute: read.int("TURN_CREDENTIALS_PER_MINUTE", 30, 1, 100_000),
  };
}
