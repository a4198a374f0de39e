/** Open long-lived streams of one kind, bounded per device and per instance. */

import { status } from "@grpc/grpc-js";
import { GuardynError, resourceExhausted } from "../platform/errors.ts";

export class StreamSlots {
  readonly #perDevice = new Map<string, number>();
  #total = 0;

  constructor(
    private readonly limits: { perDevice: number; perInstance: number },
    /** What the streams are called in errors: "SendStreams", "WatchPresence streams". */
    private readonly what: string,
  ) {}

  get size(): number {
    return this.#total;
  }

  /** Takes a slot for `device` or throws RESOURCE_EXHAUSTED; returns its release (idempotent). */
  take(device: string): () => void {
    const held = this.#perDevice.get(device) ?? 0;
    if (held >= this.limits.perDevice) {
      throw resourceExhausted(
        `this device already has ${held} ${this.what} open (limit ${this.limits.perDevice})`,
      );
    }
    if (this.#total >= this.limits.perInstance) {
      throw new GuardynError(
        status.UNAVAILABLE,
        "UNAVAILABLE_BACKEND",
        `this instance has its maximum of ${this.limits.perInstance} ${this.what} open; ` +
          "retry with backoff",
      );
    }
    this.#perDevice.set(device, held + 1);
    this.#total++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#total--;
      const left = (this.#perDevice.get(device) ?? 1) - 1;
      if (left === 0) this.#perDevice.delete(device);
      else this.#perDevice.set(device, left);
    };
  }
}
