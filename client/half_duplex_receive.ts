/**
 * Receive for half-duplex transports (browsers' fetch): the server stream ReceiveEvents plus one
 * Acknowledge call per ack, behind the same interface as the bidirectional Receive stream.
 * A ping is answered here once every ack written before it was applied by the server, which is
 * exactly what Receive's Pong promises.
 */

import { EventEmitter } from "node:events";
import type * as grpc from "@grpc/grpc-js";
import type {
  ReceiveEventsResponse,
  ReceiveRequest,
  ReceiveResponse,
} from "../proto/gen/guardyn/v1/messaging.ts";
import type { Transport } from "./transport.ts";
import { bearer } from "./transport.ts";

export class HalfDuplexReceive extends EventEmitter {
  readonly #events: grpc.ClientReadableStream<ReceiveEventsResponse>;
  /** Acks in the order written; each waits for the one before (pings wait for all). */
  #acked: Promise<void> = Promise.resolve();
  #ended = false;

  constructor(private readonly transport: Transport, private readonly token: string) {
    super();
    this.#events = transport.messaging.receiveEvents({}, bearer(token));
    this.#events.on("data", (event: ReceiveEventsResponse) => {
      this.emit("data", event as ReceiveResponse);
    });
    this.#events.on("error", (error) => {
      if (this.listenerCount("error") > 0) this.emit("error", error);
    });
    this.#events.on("status", (status) => {
      this.#ended = true;
      this.emit("status", status);
    });
  }

  write(request: ReceiveRequest): boolean {
    if (this.#ended) return false;
    const kind = request.kind;
    if (kind?.$case === "ack") {
      const messaging = this.transport.messaging;
      const ids = kind.value.envelopeIds;
      this.#acked = this.#acked.then(() =>
        this.transport.unary(
          messaging.acknowledge.bind(messaging),
          { envelopeIds: ids },
          this.token,
        )
          .then(() => {})
      ).catch(() => {
        // Not acknowledged: end the stream so the envelopes come again on the next one.
        this.cancel();
      });
    } else if (kind?.$case === "ping") {
      const nonce = kind.value.nonce;
      void this.#acked.then(() => {
        if (this.#ended) return;
        const pong: ReceiveResponse = {
          event: { $case: "pong", value: { nonce, serverTimeMs: Date.now() } },
        };
        this.emit("data", pong);
      });
    }
    return true;
  }

  /** Receive's half-close: the server cannot see one here, so the stream is closed. */
  end(): void {
    void this.#acked.then(() => this.cancel());
  }

  cancel(): void {
    this.#events.cancel();
  }
}
