/**
 * One subscription to a durable JetStream pull consumer. Handlers run with bounded concurrency;
 * an event is acknowledged after its handler resolves, negatively acknowledged with a backoff
 * delay when it throws, and terminated (logged, dropped) when that was the last allowed delivery.
 * The pull loop survives server restarts and a deleted consumer: it re-creates the consumer and
 * resumes with backoff until stopped.
 */

import type {
  ConsumerConfig,
  ConsumerMessages,
  JetStreamClient,
  JetStreamManager,
  JsMsg,
} from "@nats-io/jetstream";
import type { EventDelivery } from "./port.ts";
import { type BusEvent, decodeEvent, type EventKind } from "./subjects.ts";
import { type DeliveryPolicy, isFinalDelivery, retryDelayMs } from "./delivery.ts";
import { ensureConsumer } from "./jetstream_topology.ts";
import { Pause, Slots, withTimeout } from "./async_tools.ts";
import type { Logger } from "../platform/log.ts";

export interface PullSessionSetup {
  js: JetStreamClient;
  jsm: JetStreamManager;
  stream: string;
  config: ConsumerConfig;
  kinds: ReadonlySet<EventKind>;
  policy: DeliveryPolicy;
  handler: (delivery: EventDelivery) => Promise<void>;
  logger: Logger;
  /** How long stop() waits for running handlers so their acks still go out. */
  drainMs: number;
}

/** Backoff between attempts to (re)start pulling after an interruption. */
const RESTART_BACKOFF = { retryBaseMs: 250, retryMaxMs: 5_000 };

export class PullSession {
  readonly #setup: PullSessionSetup;
  readonly #name: string;
  readonly #slots: Slots;
  readonly #pause = new Pause();
  readonly #running = new Set<Promise<void>>();
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  #stopped = false;
  #ensureConsumer = false;

  constructor(setup: PullSessionSetup) {
    this.#setup = setup;
    this.#name = setup.config.durable_name!;
    this.#slots = new Slots(setup.policy.concurrency);
  }

  /** Creates or updates the consumer (errors reach the caller), then pulls in the background. */
  async start(): Promise<void> {
    await ensureConsumer(this.#setup.jsm, this.#setup.stream, this.#setup.config);
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#slots.abort();
    this.#pause.cancel();
    await this.#messages?.close().catch(() => undefined);
    await this.#loop;
    if (this.#running.size > 0) {
      await withTimeout(
        Promise.allSettled(this.#running),
        this.#setup.drainMs,
        () => new Error("drain timeout"),
      ).catch(() => undefined);
    }
  }

  async #run(): Promise<void> {
    const { js, stream, logger, policy } = this.#setup;
    let failures = 0;
    while (!this.#stopped) {
      try {
        if (this.#ensureConsumer) {
          await ensureConsumer(this.#setup.jsm, stream, this.#setup.config);
          this.#ensureConsumer = false;
        }
        const consumer = await js.consumers.get(stream, this.#name);
        const messages = await consumer.consume({
          max_messages: Math.min(policy.concurrency * 2, 512),
        });
        this.#messages = messages;
        if (this.#stopped) break; // closed right after the loop
        this.#watch(messages);
        failures = 0;
        for await (const msg of messages) {
          if (!(await this.#slots.acquire())) {
            settle(() => msg.nak());
            continue;
          }
          this.#track(this.#handle(msg));
        }
      } catch (error) {
        if (!this.#stopped) {
          logger.warn("bus consumer interrupted; retrying", { consumer: this.#name, error });
        }
      }
      await this.#closeMessages();
      if (this.#stopped) break;
      failures++;
      await this.#pause.sleep(retryDelayMs(failures, RESTART_BACKOFF));
    }
    await this.#closeMessages();
  }

  async #closeMessages(): Promise<void> {
    const messages = this.#messages;
    this.#messages = undefined;
    await messages?.close().catch(() => undefined);
  }

  /** A consumer deleted behind our back is re-created by the next round of the loop. */
  #watch(messages: ConsumerMessages): void {
    const { logger } = this.#setup;
    (async () => {
      for await (const status of messages.status()) {
        if (status.type === "consumer_deleted" || status.type === "consumer_not_found") {
          logger.warn("bus consumer missing on the server; re-creating", {
            consumer: this.#name,
            status: status.type,
          });
          this.#ensureConsumer = true;
          await messages.close().catch(() => undefined);
          return;
        }
      }
    })().catch((error) => logger.debug("bus consumer status ended", { error }));
  }

  #track(task: Promise<void>): void {
    this.#running.add(task);
    task.finally(() => this.#running.delete(task));
  }

  async #handle(msg: JsMsg): Promise<void> {
    const { kinds, handler, policy, logger } = this.#setup;
    try {
      let event: BusEvent;
      try {
        event = decodeEvent(msg.data);
      } catch (error) {
        logger.error("undecodable bus event dropped", {
          consumer: this.#name,
          seq: msg.seq,
          error,
        });
        settle(() => msg.term());
        return;
      }
      // Only on servers without multiple filters: the consumer sees kinds it does not want.
      if (!kinds.has(event.kind)) {
        settle(() => msg.ack());
        return;
      }
      const deliveryCount = msg.info.deliveryCount;
      try {
        await handler({ event, deliveryCount });
        settle(() => msg.ack());
      } catch (error) {
        if (isFinalDelivery(deliveryCount, policy)) {
          logger.error("bus event dropped after max deliveries", {
            consumer: this.#name,
            kind: event.kind,
            deliveries: deliveryCount,
            error: error instanceof Error ? error : String(error),
          });
          settle(() => msg.term());
        } else {
          settle(() => msg.nak(retryDelayMs(deliveryCount, policy)));
        }
      }
    } finally {
      this.#slots.release();
    }
  }
}

/** Acks are fire-and-forget; on a closed connection they throw and redelivery covers it. */
function settle(ack: () => void): void {
  try {
    ack();
  } catch {
    // The server redelivers after ack_wait.
  }
}
