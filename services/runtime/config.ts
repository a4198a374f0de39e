/**
 * The whole configuration of a process: the shared platform part, the store and the bus, and
 * each registered service's own settings, read with one EnvReader so every problem of every
 * part is reported together in one ConfigError.
 */

import { type BusConfig, describeBusConfig, parseBusConfig } from "../bus/config.ts";
import type { AnyServiceModule } from "../kit/service_module.ts";
import { parsePlatformConfig, type PlatformConfig } from "../platform/config.ts";
import { type Env, EnvReader } from "../platform/env.ts";
import { describeStoreConfig, parseStoreConfig, type StoreConfig } from "../store/config.ts";
import { type BlobConfig, describeBlobConfig, parseBlobConfig } from "../store/blob_config.ts";
import { CATALOG } from "./catalog.ts";

export interface Config extends PlatformConfig {
  store: StoreConfig;
  bus: BusConfig;
  /** Set when a module keeps blobs. */
  blobs?: BlobConfig;
  /** Each service's settings by service name. */
  services: Record<string, unknown>;
}

/** Parses everything; `modules` (default: the whole catalog) decides whose settings are read. */
export function parseConfig(env: Env, modules: readonly AnyServiceModule[] = CATALOG): Config {
  const read = new EnvReader(env);
  const platform = parsePlatformConfig(read);
  const config: Config = {
    ...platform,
    store: parseStoreConfig(read),
    bus: parseBusConfig(read),
    services: Object.fromEntries(modules.map((m) => [m.name, m.settings(read, platform)])),
  };
  if (modules.some((m) => m.blobs)) config.blobs = parseBlobConfig(read, config.store);
  if (config.store.backend === "cql" && config.tokens.keysFile === undefined) {
    read.problems.push(
      "TOKEN_KEYS_FILE is required with STORE_BACKEND=cql: every instance must share the signing keys",
    );
  }
  read.throwIfProblems();
  return config;
}

/** Describes the configuration for startup logs, without any credential. */
export function describeConfig(config: Config): Record<string, unknown> {
  return {
    domain: config.domain,
    grpc: config.grpc.listener === "off"
      ? "off"
      : `${config.grpc.host}:${config.grpc.port} (${config.grpc.listener}${
        config.grpc.listener === "workers" ? ` x${config.grpc.workers}` : ""
      })`,
    http: `${config.http.tls ? "https" : "http"}://${config.http.host}:${config.http.port}`,
    metrics: `${config.metrics.host}:${config.metrics.port}`,
    store: describeStoreConfig(config.store),
    bus: describeBusConfig(config.bus),
    ...(config.blobs ? { blobs: describeBlobConfig(config.blobs) } : {}),
  };
}
