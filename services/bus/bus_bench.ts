/**
 * Bus throughput, on both adapters:
 * - publish→consume: BATCH events published together, timed until a consumer on another
 *   instance has handled them all; events/s = BATCH / time per iteration;
 * - wake round trips: ROUNDS sequential wake-ups, each awaited at the subscriber on another
 *   instance; round trips/s = ROUNDS / time per iteration.
 * Each iteration sets up its own buses (outside the timed part) and removes them afterwards.
 * JetStream runs against NATS_URL (default nats://127.0.0.1:4222) on private streams; it fails
 * with instructions when that server is absent.
 */

import { createMemoryBus } from "./memory.ts";
import { createJetStreamBus } from "./jetstream.ts";
import type { Bus } from "./port.ts";
import { mailboxWritten, uniqueId } from "./conformance/bus_suite.ts";
import { deleteStreams, NATS_URL, requireNatsServer } from "./conformance/nats_server.ts";
import { createLogger } from "../platform/log.ts";

const BATCH = 1_000;
const ROUNDS = 200;
const ITERATIONS = { n: 10, warmup: 2 };
const logger = createLogger({ level: "error" });

interface Pair {
  producer: Bus;
  consumer: Bus;
  dispose(): Promise<void>;
}

function memoryPair(): Promise<Pair> {
  const bus = createMemoryBus(logger, { log: { maxEvents: 2 * BATCH } });
  return Promise.resolve({ producer: bus, consumer: bus, dispose: () => bus.close() });
}

let natsChecked: Promise<void> | undefined;

async function jetstreamPair(): Promise<Pair> {
  await (natsChecked ??= requireNatsServer());
  const id = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
  const options = {
    servers: [NATS_URL],
    connectTimeoutMs: 2_000,
    replicas: 1,
    stream: `GUARDYN_BENCH_${id}`,
    subjectPrefix: `guardyn.bench.${id}.events`,
  };
  const producer = await createJetStreamBus(options, logger);
  const consumer = await createJetStreamBus(options, logger);
  return {
    producer,
    consumer,
    dispose: async () => {
      await Promise.all([producer.close(), consumer.close()]);
      await deleteStreams(NATS_URL, [options.stream]);
    },
  };
}

function publishConsume(open: () => Promise<Pair>) {
  return async (b: Deno.BenchContext) => {
    const pair = await open();
    const account = uniqueId("bench");
    let handled = 0;
    const all = Promise.withResolvers<void>();
    await pair.consumer.consume("bench", ["mailbox.written"], () => {
      if (++handled === BATCH) all.resolve();
      return Promise.resolve();
    });
    b.start();
    await Promise.all(
      Array.from({ length: BATCH }, (_, i) => pair.producer.publish(mailboxWritten(account, i))),
    );
    await all.promise;
    b.end();
    await pair.dispose();
  };
}

function wakeRoundTrips(open: () => Promise<Pair>) {
  return async (b: Deno.BenchContext) => {
    const pair = await open();
    const account = uniqueId("bench");
    let arrived: (() => void) | undefined;
    await pair.consumer.onWake(account, "phone", () => arrived?.());
    b.start();
    for (let i = 0; i < ROUNDS; i++) {
      const received = new Promise<void>((resolve) => arrived = resolve);
      await pair.producer.wake(account, "phone");
      await received;
    }
    b.end();
    await pair.dispose();
  };
}

Deno.bench({
  name: `memory publish→consume x${BATCH}`,
  group: "events",
  ...ITERATIONS,
  fn: publishConsume(memoryPair),
});
Deno.bench({
  name: `jetstream publish→consume x${BATCH}`,
  group: "events",
  ...ITERATIONS,
  fn: publishConsume(jetstreamPair),
});
Deno.bench({
  name: `memory wake round trips x${ROUNDS}`,
  group: "wake",
  ...ITERATIONS,
  fn: wakeRoundTrips(memoryPair),
});
Deno.bench({
  name: `jetstream wake round trips x${ROUNDS}`,
  group: "wake",
  ...ITERATIONS,
  fn: wakeRoundTrips(jetstreamPair),
});
