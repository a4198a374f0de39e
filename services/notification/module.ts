/**
 * The notification service module: NotificationService (push registrations and settings) and
 * the push dispatcher (mailbox events in, content-free wakes out). Web Push and UnifiedPush are
 * enabled with the server's VAPID key, APNs and FCM with their vendor credentials; a platform
 * without them refuses registrations.
 */

import { defineService } from "../kit/service_module.ts";
import { RateLimiter } from "../platform/rate_limit.ts";
import { NotificationServiceService } from "../../proto/gen/guardyn/v1/notification.ts";
import { notificationHandlers } from "./notification_service.ts";
import { readNotificationSettings } from "./settings.ts";
import { loadVapidKeys } from "./vapid.ts";
import { type DispatchOutcome, PushDispatcher } from "./dispatcher.ts";
import { webPushSender } from "./web_push.ts";
import { apnsSender } from "./apns.ts";
import { fcmSender, type FcmServiceAccount } from "./fcm.ts";
import type { PushSender } from "./wake.ts";
import type { PushPlatformName } from "../store/push_ports.ts";
import { PUSH_PLATFORM_NAMES } from "../store/push_rules.ts";
import { sleep } from "../platform/time.ts";
import { resolveWithDns } from "./endpoint_guard.ts";
import client from "prom-client";
import "../store/push_ports.ts";

export const notificationModule = defineService({
  name: "notification",
  grpcServices: ["guardyn.v1.NotificationService"],
  settings: readNotificationSettings,
  stores: ["push", "mailbox"],
  events: { publishes: [], consumes: ["mailbox.written", "device.revoked", "account.deleted"] },
  deploy: {
    resources: { cpu: "100m", memory: "128Mi", memoryLimit: "512Mi" },
    prod: { minReplicas: 2, maxReplicas: 6 },
    secrets: ["push"],
  },
  async start(deps) {
    const { settings, store, log } = deps;
    const vapid = await loadVapidKeys(settings);
    // A self-hosted push service may use a private CA; nothing else changes.
    const httpClient = settings.caFile
      ? Deno.createHttpClient({ caCerts: [await Deno.readTextFile(settings.caFile)] })
      : undefined;
    const sender = vapid
      ? webPushSender({
        ...(httpClient
          ? { fetch: (url, init) => fetch(url, { ...init, client: httpClient } as RequestInit) }
          : {}),
        vapid,
        subject: settings.vapidSubject,
        resolve: resolveWithDns,
        allowPrivateEndpoints: settings.allowPrivateEndpoints,
        timeoutMs: settings.sendTimeoutMs,
      })
      : undefined;
    const senders: Partial<Record<PushPlatformName, PushSender>> = {};
    // Web Push and UnifiedPush need the VAPID key; APNs and FCM their vendor credentials.
    if (sender) Object.assign(senders, { "web-push": sender, "unified-push": sender });
    if (settings.apns) {
      senders.apns = await apnsSender({
        ...settings.apns,
        privateKeyPem: await Deno.readTextFile(settings.apns.keyFile),
        timeoutMs: settings.sendTimeoutMs,
      });
    }
    if (settings.fcm) {
      const account = JSON.parse(
        await Deno.readTextFile(settings.fcm.serviceAccountFile),
      ) as FcmServiceAccount;
      senders.fcm = await fcmSender({
        account,
        url: settings.fcm.url,
        timeoutMs: settings.sendTimeoutMs,
      });
    }
    const enabled = PUSH_PLATFORM_NAMES.filter((platform) => senders[platform]);
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
    const decisions = new client.Counter({
      name: "guardyn_push_dispatch_total",
      help: "Push decisions per mailbox event burst: pushed, gone, online, coalesced, refused, " +
        "retried, no_registration",
      labelNames: ["outcome"],
      registers: [deps.metrics.registry],
    });
    const dispatcher = new PushDispatcher({
      push: store.push,
      mailbox: store.mailbox,
      senders,
      graceMs: settings.graceMs,
      coalesceMs: settings.coalesceMs,
      now: () => Date.now(),
      sleep,
      log: log.child({ component: "push-dispatcher" }),
      count: (outcome: DispatchOutcome) => decisions.inc({ outcome }),
    });
    const subscription = await deps.bus.consume(
      "notification-push",
      ["mailbox.written", "device.revoked", "account.deleted"],
      (delivery) => dispatcher.handle(delivery),
      { concurrency: settings.dispatchConcurrency },
    );
    if (settings.allowPrivateEndpoints) {
      log.warn("PUSH_ALLOW_PRIVATE_ENDPOINTS=true: pushes may go to private addresses");
    }
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
      tasks: [{
        name: "push-dispatcher",
        stop: async () => {
          await subscription.unsubscribe();
          httpClient?.close();
        },
      }],
    };
  },
});
