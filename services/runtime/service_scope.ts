/**
 * Hands a service only what it declared: the store ports it named, and a bus that refuses to
 * publish or consume an event kind outside its declaration (a programming error, caught at the
 * first call in any test that exercises it).
 */

import type { Bus } from "../bus/port.ts";
import type { EventKind } from "../bus/subjects.ts";
import type { AnyServiceModule, StoreNeed } from "../kit/service_module.ts";
import type { Store } from "../store/ports.ts";

export function scopedStore<N extends StoreNeed>(
  store: Store,
  needs: readonly N[],
): Pick<Store, N> {
  const scoped = {} as Pick<Store, N>;
  for (const need of needs) scoped[need] = store[need];
  return scoped;
}

export function scopedBus(bus: Bus, module: AnyServiceModule): Bus {
  const publishes = new Set<EventKind>(module.events.publishes);
  const consumes = new Set<EventKind>(module.events.consumes);
  const undeclared = (verb: string, kind: string) =>
    new Error(
      `service "${module.name}" ${verb} bus event "${kind}" without declaring it in its module`,
    );
  return {
    get info() {
      return bus.info;
    },
    wake: (accountId, deviceId) => bus.wake(accountId, deviceId),
    onWake: (accountId, deviceId, handler) => bus.onWake(accountId, deviceId, handler),
    signal: (accountId, deviceId, signal) => bus.signal(accountId, deviceId, signal),
    onSignal: (accountId, deviceId, handler) => bus.onSignal(accountId, deviceId, handler),
    broadcast: (topic, data) => bus.broadcast(topic, data),
    onBroadcast: (topic, handler) => bus.onBroadcast(topic, handler),
    publish(event) {
      if (!publishes.has(event.kind)) return Promise.reject(undeclared("publishes", event.kind));
      return bus.publish(event);
    },
    consume(consumer, kinds, handler, options) {
      const missing = kinds.find((kind) => !consumes.has(kind));
      if (missing) return Promise.reject(undeclared("consumes", missing));
      return bus.consume(consumer, kinds, handler, options);
    },
    ping: () => bus.ping(),
    close: () => Promise.reject(new Error("a service does not close the shared bus")),
  };
}
