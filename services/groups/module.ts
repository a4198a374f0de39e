/**
 * The groups service module: GroupService, the MLS delivery service (group_service.ts), with
 * the purge of expired commits and remembered key-package claims.
 */

import client from "prom-client";
import { defineService } from "../kit/service_module.ts";
import { MailboxEvents } from "../kit/mailbox_events.ts";
import { RateLimiter } from "../platform/rate_limit.ts";
import { GroupServiceService } from "../../proto/gen/guardyn/v1/messaging.ts";
import { groupHandlers } from "./group_service.ts";
import { readGroupSettings } from "./settings.ts";
import { startMembershipLifecycle } from "./membership_lifecycle.ts";
import "../store/group_ports.ts";

const PURGE_BATCH = 10_000;

export const groupsModule = defineService({
  name: "groups",
  grpcServices: ["guardyn.v1.GroupService"],
  settings: readGroupSettings,
  stores: ["groups", "mailbox", "auth"],
  events: { publishes: ["mailbox.written"], consumes: ["device.revoked", "account.deleted"] },
  deploy: {
    resources: { cpu: "200m", memory: "256Mi", memoryLimit: "1Gi" },
    prod: { minReplicas: 2, maxReplicas: 8 },
  },
  async start(deps) {
    const { settings, store, bus, log } = deps;
    const now = () => Date.now();
    const events = new MailboxEvents(bus, log.child({ component: "mailbox-events" }), {
      flushDelayMs: 100,
    });
    const commits = new client.Counter({
      name: "guardyn_groups_commits_total",
      help: "SendCommit attempts by outcome (accepted, stale: another commit won, refused)",
      labelNames: ["outcome"],
      registers: [deps.metrics.registry],
    });
    const perMinute = (n: number) => n / 60;
    const handlers = groupHandlers({
      groups: store.groups,
      mailbox: store.mailbox,
      auth: store.auth,
      bus,
      events,
      log,
      now,
      recordSecret: deps.tokenKeys.pseudonymKey,
      mailboxTtlMs: settings.mailboxTtlSeconds * 1000,
      idempotencyWindowMs: settings.idempotencyWindowSeconds * 1000,
      commitRetentionMs: settings.commitRetentionSeconds * 1000,
      limiters: {
        sends: new RateLimiter({ burst: settings.sendBurst, perSecond: settings.sendPerSecond }),
        commits: new RateLimiter({
          burst: settings.commitBurst,
          perSecond: perMinute(settings.commitsPerMinute),
        }),
        groupCommits: new RateLimiter({
          burst: settings.groupCommitsPerMinute,
          perSecond: perMinute(settings.groupCommitsPerMinute),
        }),
        groupMessages: new RateLimiter({
          burst: settings.groupMessagesPerSecond,
          perSecond: settings.groupMessagesPerSecond,
        }),
        creates: new RateLimiter({
          burst: settings.createsPerHour,
          perSecond: settings.createsPerHour / 3600,
        }),
      },
      onCommit: (outcome) => commits.inc({ outcome }),
    });
    const membership = await startMembershipLifecycle({
      bus,
      groups: store.groups,
      log: log.child({ component: "membership" }),
    });
    const purge = setInterval(() => {
      store.groups.purgeExpired(now(), PURGE_BATCH)
        .catch((error) => log.warn("commit purge failed", { error }));
    }, settings.purgeIntervalMs);
    return {
      register(server) {
        server.addService("guardyn.v1.GroupService", GroupServiceService, handlers);
      },
      tasks: [
        { name: "mailbox-events", stop: () => events.stop() },
        { name: "membership", stop: () => membership.unsubscribe() },
        { name: "commit-purge", stop: () => clearInterval(purge) },
      ],
    };
  },
});
