/**
 * Push registration for this device: a Web Push subscription (what the browser's
 * PushManager.subscribe() returns) or a UnifiedPush endpoint. The server then sends a
 * content-free wake when mail (or a call) waits and no stream is open; the app connects and
 * reads the mail itself. Pushes never carry a sender, text or group.
 */

import type { Api } from "./api.ts";
import { PushPlatform } from "../proto/gen/guardyn/v1/notification.ts";

export type PushRegistrationRequest =
  | {
    platform: "web-push";
    /** PushSubscription.toJSON(): endpoint and keys (p256dh, auth). */
    subscription: { endpoint: string; keys: { p256dh: string; auth: string } };
  }
  | {
    platform: "unified-push";
    /** The distributor's endpoint; with keys when the distributor supports encryption. */
    endpoint: string;
    keys?: { p256dh: string; auth: string };
  };

export type PushPlatformName = "apns" | "fcm" | "web-push" | "unified-push";

export interface PushSettings {
  /** The server's VAPID public key: PushManager.subscribe({ applicationServerKey }). */
  vapidPublicKey: Uint8Array;
  /** Platforms this server pushes to. */
  platforms: PushPlatformName[];
}

export interface PushRegistrationInfo {
  deviceId: string;
  platform: PushPlatformName;
  registeredAtMs: number;
  /** The last push the provider accepted (0: none yet). */
  lastDeliveredAtMs: number;
}

const NAMES = new Map<PushPlatform, PushPlatformName>([
  [PushPlatform.PUSH_PLATFORM_APNS, "apns"],
  [PushPlatform.PUSH_PLATFORM_FCM, "fcm"],
  [PushPlatform.PUSH_PLATFORM_WEB_PUSH, "web-push"],
  [PushPlatform.PUSH_PLATFORM_UNIFIED_PUSH, "unified-push"],
]);

function nameOf(platform: PushPlatform): PushPlatformName {
  const name = NAMES.get(platform);
  if (!name) throw new Error(`unknown push platform ${platform}`);
  return name;
}

export async function pushSettings(api: Api): Promise<PushSettings> {
  const service = api.transport.notifications;
  const settings = await api.authed(service.getPushSettings.bind(service), {}, {
    idempotent: true,
  });
  return {
    vapidPublicKey: new Uint8Array(settings.vapidPublicKey),
    platforms: settings.enabledPlatforms.map(nameOf),
  };
}

/** Registers this device (replacing its previous registration). */
export async function registerPush(api: Api, request: PushRegistrationRequest): Promise<void> {
  const service = api.transport.notifications;
  const token = request.platform === "web-push"
    ? JSON.stringify(request.subscription)
    : JSON.stringify({
      endpoint: request.endpoint,
      ...(request.keys ? { keys: request.keys } : {}),
    });
  const platform = request.platform === "web-push"
    ? PushPlatform.PUSH_PLATFORM_WEB_PUSH
    : PushPlatform.PUSH_PLATFORM_UNIFIED_PUSH;
  // Registering the same token again changes nothing, so a retry is safe.
  await api.authed(service.registerPushToken.bind(service), { platform, token, appId: "" }, {
    idempotent: true,
  });
}

export async function unregisterPush(api: Api): Promise<void> {
  const service = api.transport.notifications;
  await api.authed(service.unregisterPushToken.bind(service), {}, { idempotent: true });
}

/** The registrations of this account's devices (never their tokens). */
export async function pushRegistrations(api: Api): Promise<PushRegistrationInfo[]> {
  const service = api.transport.notifications;
  const listed = await api.authed(service.listPushTokens.bind(service), {}, { idempotent: true });
  return listed.registrations.map((r) => ({
    deviceId: r.deviceId,
    platform: nameOf(r.platform),
    registeredAtMs: r.registeredAtMs,
    lastDeliveredAtMs: r.lastDeliveredAtMs,
  }));
}
