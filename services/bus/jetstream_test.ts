/**
 * The JetStream adapter against a real nats-server: the shared one at NATS_URL (the tests fail,
 * not skip, when it is absent) and private ones this file starts, kills and restarts.
 * Every scope uses its own stream and subject prefix, deleted at the end.
 */

import { sleep, waitUntil } from "../../tests/support/wait.ts";
import {
  busConformanceSuite,
  type BusScopeFactory,
  mailboxWritten,
  uniqueId,
} from "./conformance/bus_suite.ts";
import {
  deleteStreams,
  NATS_URL,
  NatsServerProcess,
  requireNatsServer,
} from "./conformance/nats_server.ts";
import { createJetStreamBus, type JetStreamBusOptions } from "./jetstream.ts";
import { openBus } from "../runtime/open_bus.ts";
import { BusUnavailableError } from "./errors.ts";
import type { Bus } from "./port.ts";
import { EVENT_STREAM, EVENT_SUBJECT_PREFIX } from "./subjects.ts";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { nanos } from "@nats-io/nats-core";
import { type Logger, memoryLogger } from "../platform/log.ts";
import { assert, assertEquals, captureRejection } from "../../tests/assert.ts";

let serverCheck: Promise<void> | undefined;

/** A fresh stream and subject prefix, so concurrent runs and other users never interfere. */
function namespace(): Pick<JetStreamBusOptions, "stream" | "subjectPrefix"> {
  const id = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
  return { stream: `GUARDYN_TEST_${id}`, subjectPrefix: `guardyn.test.${id}.events` };
}

function options(
  url: string,
  ns: Pick<JetStreamBusOptions, "stream" | "subjectPrefix">,
  extra: Partial<JetStreamBusOptions> = {},
): JetStreamBusOptions {
  return { servers: [url], connectTimeoutMs: 2_000, replicas: 1, ...ns, ...extra };
}

const factory: BusScopeFactory = async (log, delivery) => {
  await (serverCheck ??= requireNatsServer());
  const ns = namespace();
  const buses: Bus[] = [];
  return {
    open: async () => {
      const bus = await createJetStreamBus(options(NATS_URL, ns, { delivery }), log);
      buses.push(bus);
      return bus;
    },
    dispose: async () => {
      await Promise.all(buses.map((bus) => bus.close()));
      await deleteStreams(NATS_URL, [ns.stream!]);
    },
  };
};

busConformanceSuite("jetstream", factory);

/** Runs `fn` with buses on a private namespace of the shared server, then removes it. */
async function withNamespace(
  fn: (open: (extra?: Partial<JetStreamBusOptions>) => Promise<Bus>, log: Logger) => Promise<void>,
  ns = namespace(),
): Promise<string> {
  await (serverCheck ??= requireNatsServer());
  const log = memoryLogger();
  const buses: Bus[] = [];
  try {
    await fn(async (extra) => {
      const bus = await createJetStreamBus(options(NATS_URL, ns, extra), log);
      buses.push(bus);
      return bus;
    }, log);
  } finally {
    await Promise.all(buses.map((bus) => bus.close()));
    await deleteStreams(NATS_URL, [ns.stream!]);
  }
  return ns.stream!;
}

type Manager = Awaited<ReturnType<typeof jetstreamManager>>;

function inspect<T>(fn: (jsm: Manager) => Promise<T>): Promise<T> {
  return inspectAt(NATS_URL, fn);
}

async function inspectAt<T>(url: string, fn: (jsm: Manager) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: url, timeout: 2_000, reconnect: false });
  try {
    return await fn(await jetstreamManager(nc));
  } finally {
    await nc.close();
  }
}

Deno.test("jetstream bus: opening twice is idempotent and changed settings update stream and consumer", async () => {
  const ns = namespace();
  await withNamespace(async (open) => {
    const first = await open({ retention: { maxAgeMs: 3_600_000 }, delivery: { maxDeliver: 3 } });
    await first.consume("notifier", ["mailbox.written"], () => Promise.resolve());
    // Same settings again: nothing to change, nothing fails.
    const same = await open({ retention: { maxAgeMs: 3_600_000 }, delivery: { maxDeliver: 3 } });
    await same.consume("notifier", ["mailbox.written"], () => Promise.resolve());
    // Changed settings: the stream and the durable consumer are updated in place.
    const changed = await open({ retention: { maxAgeMs: 7_200_000 }, delivery: { maxDeliver: 4 } });
    await changed.consume("notifier", ["mailbox.written"], () => Promise.resolve());
    const [stream, consumer] = await inspect((jsm) =>
      Promise.all([jsm.streams.info(ns.stream!), jsm.consumers.info(ns.stream!, "notifier")])
    );
    assertEquals(stream.config.max_age, nanos(7_200_000));
    assertEquals(stream.config.subjects, [`${ns.subjectPrefix}.>`]);
    assertEquals(stream.config.storage, "file");
    assertEquals(consumer.config.max_deliver, 4);
    assertEquals(consumer.config.durable_name, "notifier");
    const streams = await inspect((jsm) => jsm.streams.names().next());
    assertEquals(streams.filter((name) => name === ns.stream).length, 1);
  }, ns);
});

Deno.test("jetstream bus: an unreachable server fails fast with BusUnavailableError", async () => {
  const log = memoryLogger();
  const started = Date.now();
  const error = await captureRejection(openBus({
    backend: "nats",
    servers: ["nats://127.0.0.1:1"],
    token: "s3cret-token",
    connectTimeoutMs: 1_000,
    replicas: 1,
  }, log));
  assert(error instanceof BusUnavailableError, `got ${error}`);
  assert(error.message.includes("nats://127.0.0.1:1"), error.message);
  assert(error.message.includes("1000 ms"), error.message);
  assertEquals(error.servers, ["nats://127.0.0.1:1"]);
  assert(Date.now() - started < 3_000, "must fail within the connect timeout");
  assert(!JSON.stringify(log.lines).includes("s3cret"), "the token must never be logged");
});

Deno.test("jetstream bus: a server without JetStream fails with BusUnavailableError", async () => {
  const server = await NatsServerProcess.start({ jetstream: false });
  try {
    const error = await captureRejection(
      createJetStreamBus(options(server.url, namespace()), memoryLogger()),
    );
    assert(error instanceof BusUnavailableError, `got ${error}`);
    assert(error.message.includes(server.url), error.message);
  } finally {
    await server.stop();
  }
});

Deno.test("jetstream bus: openBus logs the backend and servers it really uses", async () => {
  // A private server: openBus creates the production stream, which must not touch shared ones.
  const server = await NatsServerProcess.start();
  const log = memoryLogger();
  try {
    const bus = await openBus({
      backend: "nats",
      servers: [server.url],
      token: undefined,
      connectTimeoutMs: 2_000,
      replicas: 1,
    }, log);
    try {
      assertEquals(bus.info, { backend: "nats", location: server.url });
      const ready = log.lines.find((line) => line.msg === "bus ready");
      assertEquals(ready?.backend, "nats");
      assertEquals(ready?.servers, [server.url]);
      await bus.ping();
      const stream = await inspectAt(server.url, (jsm) => jsm.streams.info(EVENT_STREAM));
      assertEquals(stream.config.subjects, [`${EVENT_SUBJECT_PREFIX}.>`]);
    } finally {
      await bus.close();
    }
  } finally {
    await server.stop();
  }
});

Deno.test("openBus: memory backend says so", async () => {
  const log = memoryLogger();
  const bus = await openBus({ backend: "memory" }, log);
  assertEquals(bus.info.backend, "memory");
  assertEquals(log.lines.find((line) => line.msg === "bus ready")?.backend, "memory");
  await bus.close();
});

Deno.test("jetstream bus: a consumer deleted on the server is re-created and resumes", async () => {
  const ns = namespace();
  await withNamespace(async (open) => {
    const bus = await open({ delivery: { retryBaseMs: 50, retryMaxMs: 200 } });
    const account = uniqueId("acct");
    const got = new Set<number>();
    await bus.consume("phoenix", ["mailbox.written"], (d) => {
      if (d.event.kind === "mailbox.written") got.add(d.event.count);
      return Promise.resolve();
    });
    await bus.publish(mailboxWritten(account, 1));
    await waitUntil(() => got.has(1), "first event");
    await inspect((jsm) => jsm.consumers.delete(ns.stream!, "phoenix"));
    await bus.publish(mailboxWritten(account, 2));
    await waitUntil(() => got.has(2), "event after the consumer was re-created", 15_000);
  }, ns);
});

Deno.test("jetstream bus: consumption resumes after the server is killed and restarted", async () => {
  const server = await NatsServerProcess.start();
  const log = memoryLogger();
  const bus = await createJetStreamBus(
    options(server.url, namespace(), {
      requestTimeoutMs: 1_000,
      reconnectMinMs: 50,
      reconnectMaxMs: 500,
      delivery: { retryBaseMs: 50, retryMaxMs: 200 },
    }),
    log,
  );
  try {
    const account = uniqueId("acct");
    const live = new Set<number>();
    await bus.consume("live", ["mailbox.written"], (d) => {
      if (d.event.kind === "mailbox.written") live.add(d.event.count);
      return Promise.resolve();
    });
    for (let n = 1; n <= 5; n++) await bus.publish(mailboxWritten(account, n));
    await waitUntil(() => live.size === 5, "events before the crash");
    await sleep(200); // let the server write its store before it is killed

    await server.kill();
    // Publishing during the outage fails with a clear error; callers decide to retry.
    const outage = await captureRejection(bus.publish(mailboxWritten(account, 99)));
    assert(outage instanceof BusUnavailableError, `got ${outage}`);
    assert(outage.message.includes(server.url), outage.message);

    await server.restart();
    for (let n = 6; n <= 10; n++) await publishWithRetry(bus, mailboxWritten(account, n));
    await waitUntil(
      () => live.size === 10,
      "events after the restart on the same subscription",
      20_000,
    );

    // A consumer created after the restart finds everything published before and after it.
    const all = new Set<number>();
    await bus.consume("audit", ["mailbox.written"], (d) => {
      if (d.event.kind === "mailbox.written") all.add(d.event.count);
      return Promise.resolve();
    });
    await waitUntil(() => all.size >= 10, "the whole stream");
    for (let n = 1; n <= 10; n++) assert(all.has(n), `event ${n} lost`);
    assert(log.lines.some((line) => line.msg === "NATS reconnected"));
  } finally {
    await bus.close();
    await server.stop();
  }
});

/** What a caller does with BusUnavailableError: retry for a while. */
async function publishWithRetry(bus: Bus, event: ReturnType<typeof mailboxWritten>) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      return await bus.publish(event);
    } catch (error) {
      if (!(error instanceof BusUnavailableError) || Date.now() > deadline) throw error;
      await sleep(100);
    }
  }
}
