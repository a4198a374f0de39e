/**
 * Storage port of the notification service: at most one push registration per device (the
 * provider's token and how to reach it). Every adapter passes
 * services/store/conformance/push_suite.ts.
 */

import type { DeviceRef } from "./ports.ts";

declare module "./ports.ts" {
  interface StorePorts {
    push: PushStore;
  }
}

export type PushPlatformName = "apns" | "fcm" | "web-push" | "unified-push";

export interface PushRegistration {
  device: DeviceRef;
  platform: PushPlatformName;
  /** The provider token; for Web Push and UnifiedPush the subscription (endpoint and keys). */
  token: string;
  /** APNs topic or FCM app id; empty for the server default. */
  appId: string;
  registeredAtMs: number;
  /** The last push the provider accepted; 0 when none yet. */
  lastDeliveredAtMs: number;
}

export interface PushStore {
  /** Registers the device's push token, replacing the one it had. */
  put(registration: PushRegistration): Promise<void>;
  get(device: DeviceRef): Promise<PushRegistration | undefined>;
  /** The registrations of an account's devices (at most PUSH_LIST_MAX). */
  list(accountId: string): Promise<PushRegistration[]>;
  /**
   * Removes the device's registration; with `onlyToken`, only while it still holds that token
   * (a provider said the token is dead; a newer registration must survive). True when removed.
   */
  remove(device: DeviceRef, onlyToken?: string): Promise<boolean>;
  /** Notes an accepted push, only while the registration still holds `token`. */
  delivered(device: DeviceRef, token: string, atMs: number): Promise<void>;
  /** Removes every registration of the account (it was deleted). */
  purgeAccount(accountId: string): Promise<void>;
}
