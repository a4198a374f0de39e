/**
 * Opens the configured bus. A configured NATS endpoint that cannot be reached is an error
 * (BusUnavailableError), never a silent fallback to the in-process bus: instances on a memory
 * bus would not see each other's wake-ups.
 */

import type { Bus } from "../bus/port.ts";
import type { BusConfig } from "../bus/config.ts";
import { createMemoryBus } from "../bus/memory.ts";
import { createJetStreamBus, displayServers } from "../bus/jetstream.ts";
import { EVENT_STREAM } from "../bus/subjects.ts";
import type { Logger } from "../platform/log.ts";

export async function openBus(config: BusConfig, log: Logger): Promise<Bus> {
  const logger = log.child({ component: "bus" });
  if (config.backend === "memory") {
    const bus = createMemoryBus(logger);
    logger.info("bus ready", { backend: "memory", location: bus.info.location });
    return bus;
  }
  const servers = displayServers(config.servers);
  logger.info("bus connecting", {
    backend: "nats",
    servers,
    connectTimeoutMs: config.connectTimeoutMs,
  });
  const bus = await createJetStreamBus(
    {
      servers: config.servers,
      token: config.token,
      connectTimeoutMs: config.connectTimeoutMs,
      replicas: config.replicas,
      ...(config.stream !== undefined ? { stream: config.stream } : {}),
      ...(config.subjectPrefix !== undefined ? { subjectPrefix: config.subjectPrefix } : {}),
    },
    logger,
  );
  logger.info("bus ready", {
    backend: "nats",
    servers,
    replicas: config.replicas,
    stream: config.stream ?? EVENT_STREAM,
  });
  return bus;
}
