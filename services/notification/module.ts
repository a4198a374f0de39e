/**
 * The notification service module: NotificationService (push registrations and settings).
 * Web Push and UnifiedPush are enabled with the server's VAPID key; APNs and FCM are refused
 * until their senders exist. The dispatcher that turns mailbox events into content-free
 * pushes is not built yet (issue 15).
 */

import { defineService } from "../kit/service_module.ts";
import { RateLimiter } from "../platform/rate_limit.ts";
import { NotificationServiceService } from "../../proto/gen/guardyn/v1/notification.ts";
import { notificationHandlers } from "./notification_service.ts";
import { readNotificationSettings } from "./settings.ts";
import { loadVapidKeys } from "./vapid.ts";
import "../store/push_ports.ts";

export const notificationModule = defineService({
  name: "notification",
  grpcServices: ["guardyn.v1.NotificationService"],
  settings: readNotificationSettings,
  stores: ["push"],
  events: { publishes: [], consumes: [] },
  deploy: {
    resources: { cpu: "100m", memory: "128Mi", memoryLimit: "512Mi" },
    prod: { minReplicas: 2, maxReplicas: 6 },
    notInKubernetesYet: "its VAPID key Secret and the push dispatcher are not built yet (issue 15)",
  },
  async start(deps) {
    const { settings, store, log } = deps;
    const vapid = await loadVapidKeys(settings);
    // Web Push and UnifiedPush need the VAPID key; APNs and FCM wait for their senders.
    const enabled = vapid ? (["web-push", "unified-push"] as const) : ([] as const);
    const handlers = notificationHandlers({
      push: store.push,
      enabled,
      vapidPublicKey: vapid?.publicKey ?? new Uint8Array(),
      limiter: new RateLimiter({
        burst: settings.registrationsPerHour,
        perSecond: settings.registrationsPerHour / 3600,
      }),
      now: () => Date.now(),
    });
    log.info("notification", {
      platforms: enabled,
      vapid: settings.vapidPrivateKey
        ? "VAPID_PRIVATE_KEY"
        : settings.vapidKeyFile ?? "off (VAPID_PRIVATE_KEY not set with the cluster store)",
    });
    return {
      register(server) {
        server.addService("guardyn.v1.NotificationService", NotificationServiceService, handlers);
      },
      tasks: [],
    };
  },
});
