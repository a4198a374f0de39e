/**
 * Who is waiting on which linking session (WaitProvisioning), per instance: one waiter per
 * session (a new wait replaces the old one, which ends ABORTED) and a cap on open waits per
 * client address. The wait itself sleeps until a bus wake-up says the session was filled,
 * with a slow re-read as the fallback for a lost wake-up (the bus is a hint, the store the
 * truth).
 */

import * as grpc from "@grpc/grpc-js";
import { GuardynError } from "../platform/errors.ts";

/** The bus "device" a linking session's wake-ups travel on: ("provisioning", session id). */
export const PROVISIONING_WAKE_ACCOUNT = "provisioning";

export class ProvisioningWaiters {
  readonly #bySession = new Map<string, AbortController>();
  readonly #byAddress = new Map<string, number>();

  constructor(private readonly maxPerAddress: number) {}

  /** Open waits on this instance. */
  get size(): number {
    return this.#bySession.size;
  }

  /**
   * Registers a wait; returns its signal (aborted when a newer wait on the session replaces it)
   * and a release to call when the wait ends. Refuses past the per-address cap.
   */
  enter(sessionId: string, address: string): { replaced: AbortSignal; release: () => void } {
    const open = this.#byAddress.get(address) ?? 0;
    if (open >= this.maxPerAddress) {
      throw new GuardynError(
        grpc.status.RESOURCE_EXHAUSTED,
        "RATE_LIMITED",
        `at most ${this.maxPerAddress} open provisioning waits per client address`,
        undefined,
        5_000,
      );
    }
    this.#bySession.get(sessionId)?.abort(
      new GuardynError(
        grpc.status.ABORTED,
        "ALREADY_EXISTS",
        "a newer wait on this provisioning session replaced this one",
      ),
    );
    const controller = new AbortController();
    this.#bySession.set(sessionId, controller);
    this.#byAddress.set(address, open + 1);
    let released = false;
    return {
      replaced: controller.signal,
      release: () => {
        if (released) return;
        released = true;
        if (this.#bySession.get(sessionId) === controller) this.#bySession.delete(sessionId);
        const left = (this.#byAddress.get(address) ?? 1) - 1;
        if (left > 0) this.#byAddress.set(address, left);
        else this.#byAddress.delete(address);
      },
    };
  }
}
