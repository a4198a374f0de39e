/**
 * NotificationService: the calling device's push registration (one per device, the last one
 * wins), the account's registrations without their tokens, and the public push settings. The
 * tokens are what the dispatcher pushes to; pushes carry no content (notification.proto).
 */

import { invalidArgument } from "../platform/errors.ts";
import { type Handlers, requireAuth } from "../platform/grpc_server.ts";
import type { RateLimiter } from "../platform/rate_limit.ts";
import type { PushPlatformName, PushStore } from "../store/push_ports.ts";
import { PUSH_APP_ID_MAX_CHARS } from "../store/push_rules.ts";
import {
  NotificationServiceService,
  PushPlatform,
} from "../../proto/gen/guardyn/v1/notification.ts";
import { normalizePushToken } from "./push_tokens.ts";

export interface NotificationDeps {
  push: PushStore;
  /** Platforms this server delivers to: registrations for others are refused. */
  enabled: readonly PushPlatformName[];
  vapidPublicKey: Uint8Array;
  limiter: RateLimiter;
  now: () => number;
}

const PLATFORM_NAMES = new Map<PushPlatform, PushPlatformName>([
  [PushPlatform.PUSH_PLATFORM_APNS, "apns"],
  [PushPlatform.PUSH_PLATFORM_FCM, "fcm"],
  [PushPlatform.PUSH_PLATFORM_WEB_PUSH, "web-push"],
  [PushPlatform.PUSH_PLATFORM_UNIFIED_PUSH, "unified-push"],
]);
const PLATFORM_ENUMS = new Map([...PLATFORM_NAMES].map(([value, name]) => [name, value]));

export function notificationHandlers(
  deps: NotificationDeps,
): Handlers<typeof NotificationServiceService> {
  return {
    async registerPushToken(request, ctx) {
      const auth = requireAuth(ctx);
      const device = { accountId: auth.accountId, deviceId: auth.deviceId };
      const platform = PLATFORM_NAMES.get(request.platform);
      if (!platform || !deps.enabled.includes(platform)) {
        throw invalidArgument(
          `platform is not enabled on this server; enabled: ${deps.enabled.join(", ") || "none"}`,
        );
      }
      if (request.appId.length > PUSH_APP_ID_MAX_CHARS || /\p{Cc}/u.test(request.appId)) {
        throw invalidArgument(`app_id: at most ${PUSH_APP_ID_MAX_CHARS} printable characters`);
      }
      const checked = normalizePushToken(platform, request.token);
      if ("refused" in checked) throw invalidArgument(`token: ${checked.refused}`);
      deps.limiter.take(`${device.accountId}/${device.deviceId}`, "push registrations");
      await deps.push.put({
        device,
        platform,
        token: checked.token,
        appId: request.appId,
        registeredAtMs: deps.now(),
        lastDeliveredAtMs: 0,
      });
      return {};
    },

    async unregisterPushToken(_request, ctx) {
      const auth = requireAuth(ctx);
      await deps.push.remove({ accountId: auth.accountId, deviceId: auth.deviceId });
      return {};
    },

    async listPushTokens(_request, ctx) {
      const auth = requireAuth(ctx);
      const registrations = await deps.push.list(auth.accountId);
      return {
        registrations: registrations.map((r) => ({
          deviceId: r.device.deviceId,
          platform: PLATFORM_ENUMS.get(r.platform)!,
          appId: r.appId,
          registeredAtMs: r.registeredAtMs,
          lastDeliveredAtMs: r.lastDeliveredAtMs,
        })),
      };
    },

    getPushSettings(_request, ctx) {
      requireAuth(ctx);
      return Promise.resolve({
        vapidPublicKey: deps.vapidPublicKey,
        enabledPlatforms: deps.enabled.map((name) => PLATFORM_ENUMS.get(name)!),
      });
    },
  };
}
