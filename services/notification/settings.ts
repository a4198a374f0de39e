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
  return {
    ...(vapidPrivateKey ? { vapidPrivateKey } : {}),
    ...(vapidKeyFile && !vapidPrivateKey ? { vapidKeyFile } : {}),
    vapidSubject,
    registrationsPerHour: read.int("PUSH_REGISTRATIONS_PER_HOUR", 60, 1, 100_000),
  };
}
