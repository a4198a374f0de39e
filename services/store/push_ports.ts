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
  /** The last push claimed and not given back (accepted by the provider); 0 when none yet. */
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
  /**
   * Claims a push to the device: sets lastDeliveredAtMs to `atMs` only while the registration
   * still holds `token` and lastDeliveredAtMs still equals `seenMs` (compare-and-set), so of
   * several dispatchers deciding at once exactly one pushes. True for the winner. Giving a
   * claim back after a failed send is the same call with the values swapped.
   */
  claim(device: DeviceRef, token: string, seenMs: number, atMs: number): Promise<boolean>;
  /** Removes every registration of the account (it was deleted). */
  purgeAccount(accountId: string): Promise<void>;
}
