/** Settings of the notification service (services/notification), from the environment. */

import { dirname, join } from "node:path";
import type { PlatformConfig } from "../platform/config.ts";
import type { EnvReader } from "../platform/env.ts";
import { DEFAULT_SQLITE_PATH } from "../store/config.ts";

export interface NotificationSettings {
  /** VAPID private key (32 bytes, base64url) given in the environment. */
  vapidPrivateKey?: string;
  /** Where the VAPID key is kept when not given: beside the embedded database. Neither: off. */
  vapidKeyFile?: string;
  /** The VAPID `sub` claim: a mailto: or https: contact for push services. */
  vapidSubject: string;
  /** RegisterPushToken calls per device and hour. */
  registrationsPerHour: number;
  /** How long a connected device has to take new mail before it is pushed. */
  graceMs: number;
  /** After a push, more mail within this window pushes nothing (calls excepted). */
  coalesceMs: number;
  /** Each push request's deadline. */
  sendTimeoutMs: number;
  /** Devices waiting for a decision at once per instance (the dispatcher's bus concurrency). */
  dispatchConcurrency: number;
  /** Allows endpoints on private and loopback addresses: for tests on one machine only. */
  allowPrivateEndpoints: boolean;
  /** PEM file of an extra CA to trust for push endpoints (a self-hosted distributor). */
  caFile?: string;
  /** APNs token authentication; all four set together, or APNs is off. */
  apns?: { keyFile: string; keyId: string; teamId: string; topic: string; url: string };
  /** FCM HTTP v1 with a service account key file, or FCM is off. */
  fcm?: { serviceAccountFile: string; url: string };
}

export function readNotificationSettings(
  read: EnvReader,
  platform: PlatformConfig,
): NotificationSettings {
  const vapidPrivateKey = read.optional("VAPID_PRIVATE_KEY");
  if (vapidPrivateKey !== undefined && !/^[A-Za-z0-9_-]{43}$/.test(vapidPrivateKey)) {
    read.problems.push("VAPID_PRIVATE_KEY must be a P-256 private key: 32 bytes in base64url");
  }
  // The store's own parser reports bad store values; only the embedded path matters here.
  const embedded = (read.optional("STORE_BACKEND") ?? "sqlite") === "sqlite";
  const sqlitePath = read.optional("SQLITE_PATH") ?? DEFAULT_SQLITE_PATH;
  const vapidKeyFile = read.optional("VAPID_KEY_FILE") ??
    (embedded ? join(dirname(sqlitePath), "vapid-key.json") : undefined);
  // With the cluster store and neither set, Web Push is off (every instance must sign with
  // the same key, so none is made up); startup says so, and GetPushSettings lists nothing.
  const givenSubject = read.optional("VAPID_SUBJECT");
  const vapidSubject = givenSubject ?? `mailto:push@${platform.domain}`;
  if (givenSubject !== undefined && !/^(mailto:|https:\/\/)\S+$/.test(givenSubject)) {
    read.problems.push("VAPID_SUBJECT must be a mailto: or https: URL");
  }
  const caFile = read.optional("PUSH_CA_FILE");
  const apnsNames = ["APNS_KEY_FILE", "APNS_KEY_ID", "APNS_TEAM_ID", "APNS_TOPIC"] as const;
  const [keyFile, keyId, teamId, topic] = apnsNames.map((name) => read.optional(name));
  const apnsSet = [keyFile, keyId, teamId, topic].filter(Boolean).length;
  if (apnsSet > 0 && apnsSet < 4) {
    read.problems.push(`${apnsNames.join(", ")} must be set together`);
  }
  const apns = keyFile && keyId && teamId && topic
    ? { keyFile, keyId, teamId, topic, url: read.string("APNS_URL", "https://api.push.apple.com") }
    : undefined;
  const fcmFile = read.optional("FCM_SERVICE_ACCOUNT_FILE");
  const fcm = fcmFile
    ? { serviceAccountFile: fcmFile, url: read.string("FCM_URL", "https://fcm.googleapis.com") }
    : undefined;
  return {
    ...(caFile ? { caFile } : {}),
    ...(apns ? { apns } : {}),
    ...(fcm ? { fcm } : {}),
    ...(vapidPrivateKey ? { vapidPrivateKey } : {}),
    ...(vapidKeyFile && !vapidPrivateKey ? { vapidKeyFile } : {}),
    vapidSubject,
    registrationsPerHour: read.int("PUSH_REGISTRATIONS_PER_HOUR", 60, 1, 100_000),
    graceMs: read.int("PUSH_GRACE_MS", 1_500, 0, 60_000),
    coalesceMs: read.int("PUSH_COALESCE_SECONDS", 60, 0, 3_600) * 1000,
    sendTimeoutMs: read.int("PUSH_TIMEOUT_MS", 10_000, 100, 60_000),
    dispatchConcurrency: read.int("PUSH_DISPATCH_CONCURRENCY", 500, 1, 1_000),
    allowPrivateEndpoints:
      read.oneOf("PUSH_ALLOW_PRIVATE_ENDPOINTS", ["false", "true"] as const, "false") === "true",
  };
}
