/** Limits and timings of the messaging service (services/messaging), from the environment. */

import type { PlatformConfig } from "../platform/config.ts";
import type { EnvReader } from "../platform/env.ts";

export interface MessagingSettings {
  /** Ciphertext bytes of one envelope. */
  envelopeMaxBytes: number;
  /** Envelopes per SendMessage list (recipient devices; sync copies get one less). */
  maxEnvelopesPerRequest: number;
  /** How long an unacknowledged envelope waits in a mailbox. */
  mailboxTtlSeconds: number;
  /** How long a send's idempotency record (sender device, client message id) is kept. */
  idempotencyWindowSeconds: number;
  /** SendMessage calls per sender device. */
  sendBurst: number;
  sendPerSecond: number;
  /** An open stream re-reads its mailbox after this long without activity (a lost wake-up). */
  pollIntervalMs: number;
  /** How often expired envelopes are purged. */
  purgeIntervalMs: number;
  /** Receive streams open at once on one instance. */
  maxStreamsPerInstance: number;
  /** Receive streams a device may open per minute (a reconnect loop stops here). */
  streamOpensPerMinute: number;
  /** How long an account's device list may be reused by SendMessage (0: read every time). */
  directoryCacheMs: number;
  /** SendMessage calls handled at once per instance; more are refused as UNAVAILABLE. */
  maxConcurrentSends: number;
  /** SendStream streams one device may hold open at once. */
  maxSendStreamsPerDevice: number;
  /** SendStream streams open at once on one instance. */
  maxSendStreamsPerInstance: number;
}

export function readMessagingSettings(
  read: EnvReader,
  platform: PlatformConfig,
): MessagingSettings {
  const settings: MessagingSettings = {
    envelopeMaxBytes: read.int("MESSAGING_ENVELOPE_MAX_BYTES", 96 * 1024, 1024, 256 * 1024),
    maxEnvelopesPerRequest: read.int("MESSAGING_MAX_ENVELOPES_PER_REQUEST", 10, 1, 100),
    mailboxTtlSeconds: read.int("MESSAGING_MAILBOX_TTL_SECONDS", 30 * 86_400, 60, 90 * 86_400),
    idempotencyWindowSeconds: read.int(
      "MESSAGING_IDEMPOTENCY_WINDOW_SECONDS",
      86_400,
      60,
      90 * 86_400,
    ),
    sendBurst: read.int("MESSAGING_SEND_BURST", 50, 1, 1_000_000),
    sendPerSecond: read.int("MESSAGING_SEND_PER_SECOND", 20, 1, 1_000_000),
    pollIntervalMs: read.int("MESSAGING_POLL_INTERVAL_MS", 15_000, 100, 600_000),
    purgeIntervalMs: read.int("MESSAGING_PURGE_INTERVAL_MS", 60_000, 100, 86_400_000),
    maxStreamsPerInstance: read.int("MESSAGING_MAX_STREAMS", 50_000, 1, 1_000_000),
    streamOpensPerMinute: read.int("MESSAGING_STREAM_OPENS_PER_MINUTE", 30, 1, 100_000),
    directoryCacheMs: read.int("MESSAGING_DIRECTORY_CACHE_MS", 1_000, 0, 60_000),
    maxConcurrentSends: read.int("MESSAGING_MAX_CONCURRENT_SENDS", 1_000, 1, 100_000),
    maxSendStreamsPerDevice: read.int("MESSAGING_MAX_SEND_STREAMS_PER_DEVICE", 2, 1, 64),
    maxSendStreamsPerInstance: read.int("MESSAGING_MAX_SEND_STREAMS", 10_000, 1, 1_000_000),
  };
  if (settings.maxEnvelopesPerRequest < platform.accounts.maxDevicesPerAccount) {
    read.problems.push(
      `MESSAGING_MAX_ENVELOPES_PER_REQUEST=${settings.maxEnvelopesPerRequest} must be at ` +
        `least MAX_DEVICES_PER_ACCOUNT=${platform.accounts.maxDevicesPerAccount}: a message ` +
        "needs one envelope per device",
    );
  }
  return settings;
}
