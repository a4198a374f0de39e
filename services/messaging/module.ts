/**
 * The messaging service module: MessagingService (SendMessage, SendStream, Receive) with its background
 * work (mailbox events, revocation purges, expiry). GroupService is a separate issue and is
 * not registered here.
 */

import { status as grpcStatus } from "@grpc/grpc-js";
import client from "prom-client";
import { RateLimiter } from "../platform/rate_limit.ts";
import { type Handlers, requireAuth } from "../platform/grpc_server.ts";
import { defineService } from "../kit/service_module.ts";
import { ClosedReason, MessagingServiceService } from "../../proto/gen/guardyn/v1/messaging.ts";
import { cachedDirectory, storeDirectory } from "./directory.ts";
import { startLifecycle } from "./lifecycle.ts";
import { MailboxEvents } from "../kit/mailbox_events.ts";
import { readMessagingSettings } from "./settings.ts";
import { sendMessageHandler } from "./send_service.ts";
import { SendStreamSlots, serveSendStream } from "./send_stream.ts";
import { StreamHub } from "./stream_hub.ts";
import { ackIdsProblem } from "./ack_rules.ts";
import type { ReceiveCall } from "./device_stream.ts";
import { backendFailure } from "./store_errors.ts";
import { invalidArgument } from "../platform/errors.ts";
import type { DeviceRef } from "../store/ports.ts";
import { accessTokenExpiryMs } from "../kit/token_expiry.ts";

export const messagingModule = defineService({
  name: "messaging",
  grpcServices: ["guardyn.v1.MessagingService"],
  settings: readMessagingSettings,
  stores: ["mailbox", "auth"],
  events: {
    publishes: ["mailbox.written", "mailbox.acked"],
    consumes: ["device.revoked", "account.deleted"],
  },
  deploy: {
    resources: { cpu: "200m", memory: "256Mi", memoryLimit: "1Gi" },
    prod: { minReplicas: 2, maxReplicas: 12 },
  },
  async start(deps) {
    const { platform, settings, store, bus, log } = deps;
    const now = () => Date.now();
    // Events gather for 100 ms: one per device and kind per round, whatever the traffic.
    const events = new MailboxEvents(bus, log.child({ component: "mailbox-events" }), {
      flushDelayMs: 100,
    });
    const delivered = new client.Counter({
      name: "guardyn_messaging_envelopes_delivered_total",
      help: "Envelopes written to Receive streams (backlog and live)",
      registers: [deps.metrics.registry],
    });
    const hub = new StreamHub({
      mailbox: store.mailbox,
      bus,
      events,
      log: log.child({ component: "stream" }),
      deviceActive: async (owner) =>
        await deps.deviceStatus.status(owner.accountId, owner.deviceId) === "active",
      pollIntervalMs: settings.pollIntervalMs,
      now,
      onDelivered: (count) => delivered.inc(count),
    }, {
      maxStreams: settings.maxStreamsPerInstance,
      streamOpensPerMinute: settings.streamOpensPerMinute,
    });
    new client.Gauge({
      name: "guardyn_messaging_streams_open",
      help: "Receive streams open on this instance",
      registers: [deps.metrics.registry],
      collect() {
        this.set(hub.size);
      },
    });
    new client.Gauge({
      name: "guardyn_messaging_events_dropped",
      help: "Mailbox events dropped because the bus stayed unavailable too long",
      registers: [deps.metrics.registry],
      collect() {
        this.set(events.dropped);
      },
    });

    const directory = cachedDirectory(storeDirectory(store.auth), {
      ttlMs: settings.directoryCacheMs,
    });
    const sendMessage = sendMessageHandler({
      mailbox: store.mailbox,
      directory,
      bus,
      events,
      log,
      limits: {
        envelopeMaxBytes: settings.envelopeMaxBytes,
        mailboxTtlSeconds: settings.mailboxTtlSeconds,
        maxEnvelopes: settings.maxEnvelopesPerRequest,
      },
      idempotencyWindowMs: settings.idempotencyWindowSeconds * 1000,
      recordSecret: deps.tokenKeys.pseudonymKey,
      limiter: new RateLimiter({ burst: settings.sendBurst, perSecond: settings.sendPerSecond }),
      now,
      offerLocal: (recipient, envelope) => hub.get(recipient)?.offer(envelope) ?? false,
      maxConcurrentSends: settings.maxConcurrentSends,
    });
    const streamedSends = new client.Counter({
      name: "guardyn_messaging_stream_sends_total",
      help: "Sends handled on SendStream streams, by outcome (gRPC status code name)",
      labelNames: ["code"],
      registers: [deps.metrics.registry],
    });
    const sendStreamSlots = new SendStreamSlots({
      perDevice: settings.maxSendStreamsPerDevice,
      perInstance: settings.maxSendStreamsPerInstance,
    });
    new client.Gauge({
      name: "guardyn_messaging_send_streams_open",
      help: "SendStream streams open on this instance",
      registers: [deps.metrics.registry],
      collect() {
        this.set(sendStreamSlots.size);
      },
    });
    /** Deletes on the mailbox, then frees the stream's window here or, over the bus, elsewhere. */
    const acknowledge = async (owner: DeviceRef, ids: string[]) => {
      try {
        const deleted = await store.mailbox.ack(owner, ids);
        if (deleted > 0) events.acked(owner, deleted);
      } catch (error) {
        throw backendFailure(error);
      }
      const local = hub.get(owner);
      if (local) return local.released(ids);
      // The stream may be on another instance: tell it. Best effort: the envelopes are deleted
      // either way, and a reopened stream starts with an empty window.
      await bus.signal(owner.accountId, owner.deviceId, { kind: "acked", envelopeIds: ids })
        .catch((error) => log.warn("acked signal not sent", { error }));
    };
    const handlers = {
      sendMessage,
      sendStream: (call, ctx) =>
        serveSendStream(call, ctx, {
          sendMessage,
          requestTimeoutMs: platform.grpc.limits.maxUnaryDeadlineMs,
          tokenExpiryMs: accessTokenExpiryMs(ctx.metadata),
          now,
          slots: sendStreamSlots,
          onOutcome: (code) => streamedSends.inc({ code: grpcStatus[code] ?? String(code) }),
        }),
      receive: (call, ctx) => {
        const auth = requireAuth(ctx);
        const owner = { accountId: auth.accountId, deviceId: auth.deviceId };
        return hub.serve(call, ctx.signal, owner, accessTokenExpiryMs(ctx.metadata));
      },
      // The half-duplex form: the same device stream, which simply never receives requests
      // (ReceiveEventsResponse is ReceiveResponse field for field).
      receiveEvents: (_request, call, ctx) => {
        const auth = requireAuth(ctx);
        const owner = { accountId: auth.accountId, deviceId: auth.deviceId };
        return hub.serve(
          call as unknown as ReceiveCall,
          ctx.signal,
          owner,
          accessTokenExpiryMs(ctx.metadata),
        );
      },
      acknowledge: async (request, ctx) => {
        const auth = requireAuth(ctx);
        const owner = { accountId: auth.accountId, deviceId: auth.deviceId };
        const problem = ackIdsProblem(request.envelopeIds);
        if (problem) throw invalidArgument(problem);
        await acknowledge(owner, request.envelopeIds);
        return {};
      },
    } satisfies Handlers<typeof MessagingServiceService>;

    const lifecycle = await startLifecycle({
      mailbox: store.mailbox,
      devices: store.auth.devices,
      bus,
      log: log.child({ component: "lifecycle" }),
      forgetDevice: (accountId, deviceId) => {
        deps.deviceStatus.forget(accountId, deviceId);
        directory.forget(accountId);
      },
      // A send accepted on another instance's cached device list may still land after the
      // purge: purge once more when every such cache has expired.
      latePurgeDelayMs: settings.directoryCacheMs + 1_000,
      purgeIntervalMs: settings.purgeIntervalMs,
      now,
    });
    return {
      register(server) {
        server.addService("guardyn.v1.MessagingService", MessagingServiceService, handlers);
      },
      // In start order; the runtime stops them in reverse: streams, lifecycle, then events.
      tasks: [
        { name: "mailbox-events", stop: () => events.stop() },
        { name: "lifecycle", stop: () => lifecycle.stop() },
        {
          name: "receive-streams",
          stop: () => hub.closeAll(ClosedReason.CLOSED_REASON_SHUTTING_DOWN),
        },
      ],
    };
  },
});
