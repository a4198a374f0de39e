/**
 * Mailbox housekeeping in the background:
 * - a durable consumer of `device.revoked` and `account.deleted` (shared by every messaging
 *   instance, redelivered until handled) that ends the device's open streams on every instance
 *   and purges its mailbox;
 * - a loop that deletes expired envelopes in bounded batches.
 */

import type { Bus, EventDelivery, Subscription } from "../bus/port.ts";
import type { Logger } from "../platform/log.ts";
import type { AuthStores } from "../store/auth_ports.ts";
import {
  type DeviceRef,
  MAILBOX_ACK_MAX,
  MAILBOX_READ_MAX,
  type MailboxStore,
} from "../store/ports.ts";

/** The durable consumer name: every messaging instance shares it, so each event is handled once. */
export const PURGE_CONSUMER = "messaging-mailbox-purge";
/** Envelopes deleted per purgeExpired call, and calls per loop round. */
const EXPIRED_BATCH = 1_000;
const EXPIRED_BATCHES_PER_ROUND = 50;
/** Pages read when removing an old install's envelopes (500 each). */
const REINSTALL_PAGES_MAX = 200;

export interface LifecycleDeps {
  mailbox: MailboxStore;
  devices: Pick<AuthStores["devices"], "get">;
  bus: Bus;
  log: Logger;
  /** Drops this instance's cached device status so its streams notice at once. */
  forgetDevice: (accountId: string, deviceId?: string) => void;
  /** A removed device's mailbox is purged again this much later (late writes). */
  latePurgeDelayMs?: number;
  scheduleLatePurge?: (owner: DeviceRef) => void;
  purgeIntervalMs: number;
  now: () => number;
}

export interface Lifecycle {
  stop(): Promise<void>;
}

export async function startLifecycle(deps: LifecycleDeps): Promise<Lifecycle> {
  const latePurges = new Set<ReturnType<typeof setTimeout>>();
  const withLatePurge: LifecycleDeps = {
    ...deps,
    scheduleLatePurge: (owner) => {
      if (!deps.latePurgeDelayMs) return;
      const timer = setTimeout(() => {
        latePurges.delete(timer);
        deps.mailbox.purgeDevice(owner).catch((error) =>
          deps.log.warn("late mailbox purge failed", { error })
        );
      }, deps.latePurgeDelayMs);
      latePurges.add(timer);
    },
  };
  const subscription: Subscription = await deps.bus.consume(
    PURGE_CONSUMER,
    ["device.revoked", "account.deleted"],
    (delivery) => handleLifecycleEvent(withLatePurge, delivery),
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    // Jittered so instances started together do not purge in step.
    const delay = deps.purgeIntervalMs * (0.8 + Math.random() * 0.4);
    timer = setTimeout(() => {
      running = purgeExpired(deps).finally(() => {
        running = undefined;
        schedule();
      });
    }, delay);
  };
  schedule();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      for (const late of latePurges) clearTimeout(late);
      await running;
      await subscription.unsubscribe();
    },
  };
}

export async function handleLifecycleEvent(
  deps: LifecycleDeps,
  delivery: EventDelivery,
): Promise<void> {
  const event = delivery.event;
  if (event.kind === "device.revoked") {
    await revoke(deps, { accountId: event.accountId, deviceId: event.deviceId }, event.atMs);
  } else if (event.kind === "account.deleted") {
    deps.forgetDevice(event.accountId);
    if (event.deviceIds === undefined) {
      deps.log.warn("account.deleted without its device list: mailboxes left to expire");
      return;
    }
    for (const deviceId of event.deviceIds) {
      await revoke(deps, { accountId: event.accountId, deviceId }, event.atMs);
    }
  }
}

async function revoke(deps: LifecycleDeps, owner: DeviceRef, atMs: number): Promise<void> {
  deps.forgetDevice(owner.accountId, owner.deviceId);
  await deps.bus.signal(owner.accountId, owner.deviceId, { kind: "device.revoked", atMs })
    .catch((error) => deps.log.warn("revocation signal not sent", { error }));
  const device = await deps.devices.get(owner.accountId, owner.deviceId);
  if (!device) {
    const purged = await deps.mailbox.purgeDevice(owner);
    deps.scheduleLatePurge?.(owner);
    deps.log.info("mailbox purged", { reason: "device removed", envelopes: purged });
    return;
  }
  // The device id lives on (a reinstall): only what was queued for the old install goes.
  const purged = await deleteOlderThan(deps.mailbox, owner, atMs, deps.now());
  deps.log.info("mailbox purged", { reason: "device reinstalled", envelopes: purged });
}

async function deleteOlderThan(
  mailbox: MailboxStore,
  owner: DeviceRef,
  atMs: number,
  nowMs: number,
): Promise<number> {
  let cursor = 0;
  let deleted = 0;
  for (let page = 0; page < REINSTALL_PAGES_MAX; page++) {
    const batch = await mailbox.read(owner, cursor, MAILBOX_READ_MAX, nowMs);
    const old = batch.filter((envelope) => envelope.serverTimestampMs <= atMs);
    for (let i = 0; i < old.length; i += MAILBOX_ACK_MAX) {
      deleted += await mailbox.ack(owner, old.slice(i, i + MAILBOX_ACK_MAX).map((e) => e.id));
    }
    if (batch.length < MAILBOX_READ_MAX) break;
    cursor = batch[batch.length - 1]!.seq;
  }
  return deleted;
}

/** One round of expiry: bounded batches until nothing expired is left or the round is full. */
export async function purgeExpired(
  deps: Pick<LifecycleDeps, "mailbox" | "log" | "now">,
): Promise<number> {
  let total = 0;
  try {
    for (let i = 0; i < EXPIRED_BATCHES_PER_ROUND; i++) {
      const purged = await deps.mailbox.purgeExpired(deps.now(), EXPIRED_BATCH);
      total += purged;
      if (purged < EXPIRED_BATCH) break;
    }
  } catch (error) {
    deps.log.warn("expired envelope purge failed; retrying next round", { error });
  }
  if (total > 0) deps.log.info("expired envelopes purged", { envelopes: total });
  return total;
}
