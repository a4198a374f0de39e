/**
 * The media service module: MediaService (encrypted blobs on the blob store, TURN credentials)
 * with the sweep of expired blobs and abandoned uploads.
 */

import client from "prom-client";
import { defineService } from "../kit/service_module.ts";
import { RateLimiter } from "../platform/rate_limit.ts";
import { MediaServiceService } from "../../proto/gen/guardyn/v1/media.ts";
import { mediaHandlers } from "./media_service.ts";
import { readMediaSettings } from "./settings.ts";
import { sweepExpiredMedia } from "./sweeper.ts";
import "../store/group_ports.ts";
import "../store/media_ports.ts";

export const mediaModule = defineService({
  name: "media",
  grpcServices: ["guardyn.v1.MediaService"],
  settings: readMediaSettings,
  stores: ["media", "groups"],
  blobs: true,
  events: { publishes: [], consumes: [] },
  deploy: {
    resources: { cpu: "200m", memory: "256Mi", memoryLimit: "1Gi" },
    prod: { minReplicas: 2, maxReplicas: 8 },
    secrets: ["s3", "turn"],
  },
  start(deps) {
    const { settings, store, log } = deps;
    const blobs = deps.blobs;
    if (!blobs) throw new Error("the media service needs the blob store (runtime wiring)");
    const now = () => Date.now();
    const stored = new client.Counter({
      name: "guardyn_media_stored_bytes_total",
      help: "Ciphertext bytes of uploads completed (digest checked)",
      registers: [deps.metrics.registry],
    });
    const swept = new client.Counter({
      name: "guardyn_media_swept_total",
      help: "Blobs deleted by the sweeper, by kind (abandoned_upload, expired_blob)",
      labelNames: ["kind"],
      registers: [deps.metrics.registry],
    });
    const handlers = mediaHandlers({
      media: store.media,
      groups: store.groups,
      blobs,
      settings,
      log,
      now,
      limiters: {
        uploads: new RateLimiter({
          burst: settings.uploadsPerHour,
          perSecond: settings.uploadsPerHour / 3600,
        }),
        turn: new RateLimiter({
          burst: settings.turnPerMinute,
          perSecond: settings.turnPerMinute / 60,
        }),
      },
      onStored: (bytes) => stored.inc(bytes),
    });
    let sweeping: Promise<unknown> = Promise.resolve();
    const timer = setInterval(() => {
      sweeping = sweepExpiredMedia(
        { media: store.media, blobs, log, onSwept: (kind) => swept.inc({ kind }) },
        now(),
      ).catch((error) => log.warn("media sweep failed", { error }));
    }, settings.sweepIntervalMs);
    log.info("media", {
      blobs: blobs.info,
      turn: settings.turn ? settings.turn.urls : "off (TURN_SHARED_SECRET not set)",
    });
    return Promise.resolve({
      register(server) {
        server.addService("guardyn.v1.MediaService", MediaServiceService, handlers);
      },
      tasks: [{
        name: "media-sweeper",
        stop: async () => {
          clearInterval(timer);
          await sweeping;
        },
      }],
    });
  },
});
