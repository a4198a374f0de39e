/**
 * The Receive streams open on this instance, one per device. A new stream for a device closes
 * the older one here at once, and (through the bus signal each stream sends when it opens) the
 * older ones on other instances. Bounded: streams per instance and stream opens per device.
 */

import { resourceExhausted, unavailable } from "../platform/errors.ts";
import { RateLimiter } from "../platform/rate_limit.ts";
import type { DeviceRef } from "../store/ports.ts";
import { ClosedReason } from "../../proto/gen/guardyn/v1/messaging.ts";
import { DeviceStream, type DeviceStreamDeps, type ReceiveCall } from "./device_stream.ts";

export interface StreamHubOptions {
  maxStreams: number;
  streamOpensPerMinute: number;
}

export class StreamHub {
  readonly #streams = new Map<string, DeviceStream>();
  readonly #opens: RateLimiter;
  #stopped = false;

  constructor(private readonly deps: DeviceStreamDeps, private readonly options: StreamHubOptions) {
    this.#opens = new RateLimiter({
      burst: Math.max(3, Math.ceil(options.streamOpensPerMinute / 6)),
      perSecond: options.streamOpensPerMinute / 60,
    });
  }

  get size(): number {
    return this.#streams.size;
  }

  /** Serves one Receive call until it ends; rejects with the status to end it with. */
  serve(
    call: ReceiveCall,
    signal: AbortSignal,
    owner: DeviceRef,
    tokenExpiresAtMs: number | undefined,
  ): Promise<void> {
    if (this.#stopped) {
      return Promise.reject(unavailable("this instance is shutting down", "SHUTTING_DOWN"));
    }
    const key = `${owner.accountId}/${owner.deviceId}`;
    const previous = this.#streams.get(key);
    if (!previous && this.#streams.size >= this.options.maxStreams) {
      return Promise.reject(resourceExhausted(
        `this instance serves its maximum of ${this.options.maxStreams} streams; reconnect later`,
      ));
    }
    try {
      this.#opens.take(key, "receive streams of this device");
    } catch (error) {
      return Promise.reject(error);
    }
    const stream = new DeviceStream(call, this.deps, {
      owner,
      streamId: crypto.randomUUID(),
      openedAtMs: this.deps.now(),
      ...(tokenExpiresAtMs !== undefined ? { tokenExpiresAtMs } : {}),
    });
    this.#streams.set(key, stream);
    previous?.close(ClosedReason.CLOSED_REASON_REPLACED);
    return stream.run(signal).finally(() => {
      if (this.#streams.get(key) === stream) this.#streams.delete(key);
    });
  }

  /** The open stream of a device on this instance, if any. */
  get(owner: DeviceRef): DeviceStream | undefined {
    return this.#streams.get(`${owner.accountId}/${owner.deviceId}`);
  }

  /** Ends every stream with Closed{reason}; new streams are refused from now on. */
  closeAll(reason: ClosedReason): void {
    this.#stopped = true;
    for (const stream of this.#streams.values()) stream.close(reason);
  }
}
