/**
 * What a service declares to the runtime, in its own folder (`services/<name>/module.ts`): its
 * settings, the stores it needs, the bus events it publishes and consumes, its gRPC services,
 * how it is deployed, and a `start` that returns its handlers, background tasks and health
 * checks. The runtime (services/runtime/) reads the declaration, hands the service only what it
 * declared, and refuses at startup anything it did not (an undeclared gRPC service or event).
 */

import type { Bus } from "../bus/port.ts";
import type { EventKind } from "../bus/subjects.ts";
import type { CachedDeviceStatus } from "../platform/device_status.ts";
import type { PlatformConfig } from "../platform/config.ts";
import type { EnvReader } from "../platform/env.ts";
import type { GrpcServer } from "../platform/grpc_server.ts";
import type { Logger } from "../platform/log.ts";
import type { Metrics } from "../platform/metrics.ts";
import type { TokenKeys } from "../platform/tokens.ts";
import type { Store, StorePorts } from "../store/ports.ts";
import type { BlobStore } from "../store/blob_ports.ts";

/** The store ports a service can ask for. */
export type StoreNeed = keyof StorePorts;

/** Kubernetes sizing, read by `deno task kube-manifests` (tasks/kube_catalog.ts). */
export interface DeploySpec {
  resources: {
    /** CPU request, e.g. "250m". */
    cpu: string;
    /** Memory request, e.g. "256Mi". */
    memory: string;
    /** Memory limit (the OOM line), at least the request. */
    memoryLimit: string;
  };
  /** Production autoscaling bounds (minReplicas is at least 2). */
  prod: { minReplicas: number; maxReplicas: number };
  /**
   * Secrets its pods read besides the store's and the bus's: "s3" (S3_ACCESS_KEY_ID,
   * S3_SECRET_ACCESS_KEY), "turn" (TURN_SHARED_SECRET, shared with coturn), "push"
   * (VAPID_PRIVATE_KEY: every notification instance signs Web Push with one key).
   */
  secrets?: readonly ("s3" | "turn" | "push")[];
  /**
   * Why the service is not in the Kubernetes manifests yet (it runs in `deno task dev` and the
   * test platforms); absent once it is.
   */
  notInKubernetesYet?: string;
}

/** What the runtime hands a started service: only what its declaration asked for. */
export interface ServiceDeps<S, N extends StoreNeed> {
  /** Shared configuration: domain, hosts, listeners, tokens, account limits. */
  platform: PlatformConfig;
  /** This service's own settings, parsed by its `settings` function. */
  settings: S;
  /** Already scoped to the service: `{ service: name }`. */
  log: Logger;
  metrics: Metrics;
  store: Pick<Store, N>;
  /** Publishes and consumes only the declared event kinds. */
  bus: Bus;
  /** Access-token keys: every service verifies, the auth service also signs. */
  tokenKeys: TokenKeys;
  /** Device status behind token checks; forget() after a local revocation. */
  deviceStatus: CachedDeviceStatus;
  /** The blob store, for a module that declared `blobs: true` (else undefined). */
  blobs?: BlobStore;
}

/** A background task the runtime stops on shutdown, in reverse start order. */
export interface BackgroundTask {
  name: string;
  stop(): Promise<void> | void;
}

/** What `start` returns. */
export interface StartedService {
  /** Registers every declared gRPC service (and nothing else) on the server. */
  register(server: GrpcServer): void;
  tasks?: BackgroundTask[];
  /** Readiness checks by name, added to /readyz beside the store and the bus. */
  health?: Record<string, () => Promise<void>>;
}

export interface ServiceModule<S = unknown, N extends StoreNeed = StoreNeed> {
  /** Short name: the folder under services/, the logs' `service` and the Kubernetes name. */
  name: string;
  /** Fully qualified gRPC services it serves ("guardyn.v1.AuthService"); the ingress routes them. */
  grpcServices: readonly string[];
  /** Reads its settings; problems are recorded on `read` and reported with everyone else's. */
  settings(read: EnvReader, platform: PlatformConfig): S;
  stores: readonly N[];
  /** The module keeps blobs (MEDIA_BACKEND): the runtime opens the blob store for it. */
  blobs?: boolean;
  events: { publishes: readonly EventKind[]; consumes: readonly EventKind[] };
  deploy: DeploySpec;
  start(deps: ServiceDeps<S, N>): Promise<StartedService>;
}

/** A module of any settings and stores, as catalogs and runtimes hold them. */
// deno-lint-ignore no-explicit-any
export type AnyServiceModule = ServiceModule<any, any>;

/** Declares a module with its types inferred (settings and store needs). */
export function defineService<S, N extends StoreNeed>(
  module: ServiceModule<S, N>,
): ServiceModule<S, N> {
  return module;
}
