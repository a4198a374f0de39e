/**
 * The presence service module: PresenceService (status, heartbeats, grants, reads and
 * watches) and the hub that fans changes out to this instance's watchers. Every instance
 * hears every change over the bus's "presence" broadcast; see watch_hub.ts.
 */

import client from "prom-client";
import { defineService } from "../kit/service_module.ts";
import { StreamSlots } from "../kit/stream_slots.ts";
import { accessTokenExpiryMs } from "../kit/token_expiry.ts";
import { RateLimiter } from "../platform/rate_limit.ts";
import { PresenceServiceService } from "../../proto/gen/guardyn/v1/presence.ts";
import { readPresenceSettings } from "./settings.ts";
import { PresenceHub } from "./watch_hub.ts";
import { presenceHandlers } from "./presence_service.ts";
import "../store/presence_ports.ts";

/** Every watched account is read back from the store at least this often. */
const RESYNC_MS = 60_000;
const SWEEP_MS = 1_000;

export const presenceModule = defineService({
  name: "presence",
  grpcServices: ["guardyn.v1.PresenceService"],
  settings: readPresenceSettings,
  stores: ["presence"],
  events: { publishes: [], consumes: ["account.deleted"] },
  deploy: {
    resources: { cpu: "100m", memory: "128Mi", memoryLimit: "512Mi" },
    prod: { minReplicas: 2, maxReplicas: 6 },
  },
  async start(deps) {
    const { settings, store, log } = deps;
    const sent = new client.Counter({
      name: "guardyn_presence_updates_total",
      help: "Presence changes written to watchers",
      registers: [deps.metrics.registry],
    });
    const open = new client.Gauge({
      name: "guardyn_presence_watches",
      help: "WatchPresence streams open on this instance",
      registers: [deps.metrics.registry],
    });
    const fanOut = new client.Histogram({
      name: "guardyn_presence_fanout_seconds",
      help: "From a presence change reaching this instance to its last write to a watcher here",
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [deps.metrics.registry],
    });
    const hub = new PresenceHub({
      store: store.presence,
      bus: deps.bus,
      now: () => Date.now(),
      windowMs: settings.onlineWindowMs,
      coalesceMs: settings.coalesceMs,
      resyncMs: RESYNC_MS,
      sweepMs: SWEEP_MS,
      log: log.child({ component: "presence-hub" }),
      onSent: (count) => sent.inc(count),
      onFanOut: (seconds) => fanOut.observe(seconds),
    });
    await hub.start();
    const perMinute = (n: number) => new RateLimiter({ burst: n, perSecond: n / 60 });
    const handlers = presenceHandlers({
      store: store.presence,
      hub,
      settings,
      slots: new StreamSlots(
        { perDevice: settings.watchesPerDevice, perInstance: settings.maxWatches },
        "WatchPresence streams",
      ),
      limits: {
        updates: perMinute(settings.updatesPerMinute),
        reads: perMinute(120),
        // A heartbeat every interval, with room for reconnects and several app windows.
        heartbeats: new RateLimiter({
          burst: 10,
          perSecond: Math.max(4_000 / settings.heartbeatIntervalMs, 0.05),
        }),
      },
      now: () => Date.now(),
      tokenExpiryMs: (ctx) => accessTokenExpiryMs(ctx.metadata),
      onWatchesChanged: (count) => open.set(count),
    });
    const purge = await deps.bus.consume(
      "presence-purge",
      ["account.deleted"],
      async ({ event }) => {
        await store.presence.purgeAccount(event.accountId);
        hub.publish({ kind: "grants", ownerId: event.accountId });
      },
    );
    log.info("presence", {
      onlineWindowMs: settings.onlineWindowMs,
      heartbeatIntervalMs: settings.heartbeatIntervalMs,
      broadcast: deps.bus.info.backend,
    });
    return {
      register(server) {
        server.addService("guardyn.v1.PresenceService", PresenceServiceService, handlers);
      },
      tasks: [{
        name: "presence-hub",
        stop: async () => {
          await purge.unsubscribe();
          await hub.stop();
        },
      }],
    };
  },
});
