/**
 * The push dispatcher: turns `mailbox.written` events into one content-free wake per device
 * that is not connected. It waits a grace period, then asks the mailbox whether the mail is
 * still there: a device with an open Receive stream has taken and acknowledged it by then, so
 * it gets nothing. Events for a device that already waits join that wait (one push per burst),
 * and a device pushed within the coalescing window is not pushed again unless the new mail is
 * an incoming call. The event is acknowledged only after the decision, so a dispatcher that
 * dies mid-wait leaves it to another instance (durable consumer).
 */

import type { EventDelivery } from "../bus/port.ts";
import type { Logger } from "../platform/log.ts";
import type { DeviceRef, MailboxStore } from "../store/ports.ts";
import type { PushPlatformName, PushStore } from "../store/push_ports.ts";
import type { PushSender, SendOutcome } from "./wake.ts";

export interface DispatcherDeps {
  push: PushStore;
  mailbox: Pick<MailboxStore, "count">;
  /** Senders of the enabled platforms; registrations of other platforms are skipped. */
  senders: Partial<Record<PushPlatformName, PushSender>>;
  /** How long a connected device has to take its mail before it counts as offline. */
  graceMs: number;
  /** After a push, further mail within this window wakes nobody (the device is coming). */
  coalesceMs: number;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  log: Logger;
  /** Counts each decision: pushed, gone, online, coalesced, refused, retried, no_registration. */
  count: (outcome: DispatchOutcome) => void;
}

export type DispatchOutcome =
  | "pushed"
  | "gone"
  | "online"
  | "coalesced"
  | "refused"
  | "retried"
  | "no_registration";

interface Waiting {
  urgent: boolean;
  decided: Promise<void>;
}

export class PushDispatcher {
  readonly #waiting = new Map<string, Waiting>();

  constructor(private readonly deps: DispatcherDeps) {}

  /** The bus handler; throwing makes the bus redeliver later (backoff). */
  async handle({ event }: EventDelivery): Promise<void> {
    switch (event.kind) {
      case "mailbox.written":
        return await this.#written(
          { accountId: event.accountId, deviceId: event.deviceId },
          event.urgent === true,
        );
      case "device.revoked":
        await this.deps.push.remove({ accountId: event.accountId, deviceId: event.deviceId });
        return;
      case "account.deleted":
        await this.deps.push.purgeAccount(event.accountId);
        return;
    }
  }

  /** Devices whose decision is pending on this instance. */
  get waiting(): number {
    return this.#waiting.size;
  }

  async #written(device: DeviceRef, urgent: boolean): Promise<void> {
    const key = `${device.accountId}/${device.deviceId}`;
    const joined = this.#waiting.get(key);
    if (joined) {
      // Covered by the pending decision; its own event stays unacknowledged until then.
      if (urgent) joined.urgent = true;
      return;
    }
    const waiting: Waiting = { urgent, decided: Promise.resolve() };
    waiting.decided = this.#decide(device, waiting).finally(() => this.#waiting.delete(key));
    this.#waiting.set(key, waiting);
    await waiting.decided;
  }

  async #decide(device: DeviceRef, waiting: Waiting): Promise<void> {
    const deps = this.deps;
    const { push, mailbox, senders } = deps;
    // Read before the wait too, so devices without push (most) cost no grace period.
    const registration = await push.get(device);
    if (!registration || !senders[registration.platform]) return deps.count("no_registration");
    await deps.sleep(deps.graceMs);
    const now = deps.now();
    if (await mailbox.count(device, now) === 0) return deps.count("online");
    // Read again: the device may have registered another token, even another platform.
    const current = await push.get(device);
    const sender = current && senders[current.platform];
    if (!current || !sender) return deps.count("no_registration");
    if (!waiting.urgent && now - current.lastDeliveredAtMs < deps.coalesceMs) {
      return deps.count("coalesced");
    }
    // Another instance may be deciding for the same device (events of one burst can be
    // spread over instances): the compare-and-set lets exactly one of them push.
    const seen = current.lastDeliveredAtMs;
    if (!await push.claim(device, current.token, seen, now)) return deps.count("coalesced");
    const outcome = await sender.send(current.token, { urgent: waiting.urgent });
    if (outcome.kind === "retry" || outcome.kind === "refused") {
      // Nothing was delivered: give the claim back so the next decision is not coalesced.
      await push.claim(device, current.token, now, seen);
    }
    await this.#record(device, current.token, current.platform, outcome);
  }

  async #record(
    device: DeviceRef,
    token: string,
    platform: PushPlatformName,
    outcome: SendOutcome,
  ): Promise<void> {
    const { deps } = this;
    switch (outcome.kind) {
      case "accepted":
        return deps.count("pushed");
      case "gone":
        // Only this token: a registration that replaced it meanwhile stays.
        await deps.push.remove(device, token);
        deps.log.info("push endpoint gone; registration removed", {
          platform,
          status: outcome.status,
        });
        return deps.count("gone");
      case "refused":
        deps.log.warn("push refused", { platform, reason: outcome.reason });
        return deps.count("refused");
      case "retry":
        deps.count("retried");
        throw new Error(`push to ${platform} will be retried: ${outcome.reason}`);
    }
  }
}
