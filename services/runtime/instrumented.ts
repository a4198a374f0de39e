/**
 * Store and bus latency for the dashboards, measured at the ports so every adapter and every
 * service is covered without touching them:
 *   guardyn_store_operation_seconds{port,op}   every async store call ("mailbox", "deliver")
 *   guardyn_bus_publish_seconds{kind}          durable event publishes and broadcasts
 *   guardyn_mailbox_envelopes_total{change}    envelopes written and acknowledged, from the
 *                                              mailbox events (their difference is the backlog)
 * A labelled child is resolved once per operation, so a call costs two clock reads and one
 * observation.
 */

import client from "prom-client";
import type { Bus } from "../bus/port.ts";
import type { Store } from "../store/ports.ts";

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export function instrumentedStore(store: Store, registry: client.Registry): Store {
  const seconds = new client.Histogram({
    name: "guardyn_store_operation_seconds",
    help: "Store calls by port and operation",
    labelNames: ["port", "op"],
    buckets: BUCKETS,
    registers: [registry],
  });
  const wrap = (target: object, port: string): object => {
    const cache = new Map<PropertyKey, unknown>();
    return new Proxy(target, {
      get(object, key, receiver) {
        const value = Reflect.get(object, key, receiver);
        if (typeof key !== "string") return value;
        if (cache.has(key)) return cache.get(key);
        let wrapped: unknown = value;
        if (typeof value === "function") {
          const timer = seconds.labels(port, key);
          wrapped = function (this: unknown, ...args: unknown[]) {
            const result = value.apply(object, args);
            if (!(result instanceof Promise)) return result;
            const started = performance.now();
            return result.finally(() => timer.observe((performance.now() - started) / 1000));
          };
        } else if (value && typeof value === "object" && !ArrayBuffer.isView(value)) {
          // Nested ports (auth.devices, auth.accounts...).
          wrapped = wrap(value, `${port}.${key}`);
        }
        cache.set(key, wrapped);
        return wrapped;
      },
    });
  };
  const ports = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(object, key, receiver) {
      const value = Reflect.get(object, key, receiver);
      // The store's own methods (ping, close) run on the store itself (private fields).
      if (typeof value === "function") return value.bind(object);
      if (typeof key !== "string" || !value || typeof value !== "object") return value;
      if (!ports.has(key)) ports.set(key, wrap(value, key));
      return ports.get(key);
    },
  });
}

export function instrumentedBus(bus: Bus, registry: client.Registry): Bus {
  const seconds = new client.Histogram({
    name: "guardyn_bus_publish_seconds",
    help: "Durable event publishes (until persisted) and broadcasts, by event kind or topic",
    labelNames: ["kind"],
    buckets: BUCKETS,
    registers: [registry],
  });
  const envelopes = new client.Counter({
    name: "guardyn_mailbox_envelopes_total",
    help: "Envelopes written to and acknowledged from mailboxes (from the mailbox events)",
    labelNames: ["change"],
    registers: [registry],
  });
  const written = envelopes.labels("written");
  const acked = envelopes.labels("acked");
  const timed = async <T>(kind: string, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await work();
    } finally {
      seconds.labels(kind).observe((performance.now() - started) / 1000);
    }
  };
  // Every method delegates to the bus itself (its private fields need it as `this`).
  return {
    info: bus.info,
    wake: (accountId, deviceId) => bus.wake(accountId, deviceId),
    onWake: (accountId, deviceId, handler) => bus.onWake(accountId, deviceId, handler),
    signal: (accountId, deviceId, signal) => bus.signal(accountId, deviceId, signal),
    onSignal: (accountId, deviceId, handler) => bus.onSignal(accountId, deviceId, handler),
    broadcast: (topic, data) => timed(`broadcast.${topic}`, () => bus.broadcast(topic, data)),
    onBroadcast: (topic, handler) => bus.onBroadcast(topic, handler),
    publish: async (event) => {
      await timed(event.kind, () => bus.publish(event));
      if (event.kind === "mailbox.written") written.inc(event.count);
      else if (event.kind === "mailbox.acked") acked.inc(event.count);
    },
    consume: (consumer, kinds, handler, options) => bus.consume(consumer, kinds, handler, options),
    ping: () => bus.ping(),
    close: () => bus.close(),
  };
}
