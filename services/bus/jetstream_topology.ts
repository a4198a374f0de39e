/**
 * The JetStream stream and durable consumers Guardyn needs, created by the code at startup:
 * create when missing, update when present, never fail because it already exists (two
 * instances starting together may race to create; the loser updates).
 */

import {
  AckPolicy,
  type ConsumerConfig,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  ReplayPolicy,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/nats-core";
import type { DeliveryPolicy } from "./delivery.ts";
import { type EventKind, eventSubject, MAX_BROADCAST_BYTES, MAX_EVENT_BYTES } from "./subjects.ts";

export interface StreamSettings {
  name: string;
  /** Events are published on `<subjectPrefix>.<kind>`. */
  subjectPrefix: string;
  replicas: number;
  maxAgeMs: number;
  maxBytes: number;
  maxMsgs: number;
  /** Publishes with an equal message id within this window are stored once. */
  duplicateWindowMs: number;
}

export const STREAM_DEFAULTS = {
  maxAgeMs: 24 * 3_600_000,
  maxBytes: 1024 ** 3,
  maxMsgs: 10_000_000,
  duplicateWindowMs: 120_000,
} as const;

const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const SUBJECT_PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){0,7}$/;

/** Validates settings with messages naming the field. */
export function checkStreamSettings(s: StreamSettings): StreamSettings {
  if (!STREAM_NAME.test(s.name)) throw new Error("stream name must be 1..64 chars of A-Za-z0-9_-");
  if (!SUBJECT_PREFIX.test(s.subjectPrefix)) {
    throw new Error("subject prefix must be dot-separated tokens of A-Za-z0-9_-");
  }
  const ranges: [keyof StreamSettings, number, number][] = [
    ["replicas", 1, 5],
    ["maxAgeMs", 1_000, 365 * 24 * 3_600_000],
    ["maxBytes", 1024 ** 2, 1024 ** 4],
    ["maxMsgs", 1, 1_000_000_000],
    ["duplicateWindowMs", 1_000, 24 * 3_600_000],
  ];
  for (const [field, min, max] of ranges) {
    const value = s[field];
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new RangeError(`stream ${field} must be an integer in ${min}..${max}`);
    }
  }
  if (s.duplicateWindowMs > s.maxAgeMs) {
    throw new RangeError("stream duplicateWindowMs must not exceed maxAgeMs");
  }
  return s;
}

export function streamConfig(s: StreamSettings): StreamConfig {
  return {
    name: s.name,
    subjects: [`${s.subjectPrefix}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    // When full, the oldest events go: the bus is a hint, the store keeps the truth.
    discard: DiscardPolicy.Old,
    num_replicas: s.replicas,
    max_age: nanos(s.maxAgeMs),
    max_bytes: s.maxBytes,
    max_msgs: s.maxMsgs,
    max_msg_size: MAX_EVENT_BYTES,
    duplicate_window: nanos(s.duplicateWindowMs),
  } as StreamConfig;
}

/**
 * The broadcast stream beside the event stream: memory storage, minutes of retention. Listeners
 * read it with ordered consumers from "new", so it only bridges reconnects.
 */
export function broadcastStreamConfig(s: StreamSettings): StreamConfig {
  return {
    name: `${s.name}_BROADCAST`,
    subjects: [`${s.subjectPrefix}_broadcast.>`],
    storage: StorageType.Memory,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: s.replicas,
    max_age: nanos(BROADCAST_RETENTION_MS),
    max_bytes: 64 * 1024 ** 2,
    max_msgs: 100_000,
    max_msg_size: MAX_BROADCAST_BYTES,
  } as StreamConfig;
}

/** How long broadcasts stay: longer than a reconnect takes, short enough to hold little. */
export const BROADCAST_RETENTION_MS = 300_000;

/** Multiple filter subjects on one consumer arrived in nats-server 2.10. */
export function supportsMultipleFilters(serverVersion: string | undefined): boolean {
  const match = /^v?(\d+)\.(\d+)/.exec(serverVersion ?? "");
  if (!match) return false;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major > 2 || (major === 2 && minor >= 10);
}

/**
 * A durable pull consumer over `kinds`. Older servers take one filter subject only; with several
 * kinds there, the consumer takes every event and the adapter acknowledges unwanted kinds
 * without handling them.
 */
export function consumerConfig(
  name: string,
  kinds: readonly EventKind[],
  subjectPrefix: string,
  policy: DeliveryPolicy,
  multipleFilters: boolean,
): ConsumerConfig {
  const subjects = kinds.map((kind) => eventSubject(kind, subjectPrefix));
  const filter = subjects.length === 1
    ? { filter_subject: subjects[0] }
    : multipleFilters
    ? { filter_subjects: subjects }
    : { filter_subject: `${subjectPrefix}.>` };
  return {
    durable_name: name,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    replay_policy: ReplayPolicy.Instant,
    ack_wait: nanos(policy.ackWaitMs),
    max_deliver: policy.maxDeliver,
    max_ack_pending: policy.maxAckPending,
    ...filter,
  };
}

const STREAM_NAME_IN_USE = 10058;
const CONSUMER_NAME_EXISTS = 10013;
const CONSUMER_ALREADY_EXISTS = 10148;

function apiCode(error: unknown): number | undefined {
  return error instanceof JetStreamApiError ? error.code : undefined;
}

async function streamExists(jsm: JetStreamManager, name: string): Promise<boolean> {
  try {
    await jsm.streams.info(name);
    return true;
  } catch (error) {
    if (apiCode(error) === JetStreamApiCodes.StreamNotFound) return false;
    throw error;
  }
}

export async function ensureStream(jsm: JetStreamManager, s: StreamSettings): Promise<void> {
  await ensureStreamConfig(jsm, streamConfig(checkStreamSettings(s)));
  await ensureStreamConfig(jsm, broadcastStreamConfig(s));
}

async function ensureStreamConfig(jsm: JetStreamManager, config: StreamConfig): Promise<void> {
  const s = { name: config.name };
  const { name: _name, storage: _storage, retention: _retention, ...updatable } = config;
  if (await streamExists(jsm, s.name)) {
    await wrap(`update stream ${s.name}`, jsm.streams.update(s.name, updatable));
    return;
  }
  try {
    await jsm.streams.add(config);
  } catch (error) {
    if (apiCode(error) !== STREAM_NAME_IN_USE) throw context(`create stream ${s.name}`, error);
    await wrap(`update stream ${s.name}`, jsm.streams.update(s.name, updatable));
  }
}

/** Fields this code owns on a consumer; a difference in any of them triggers an update. */
const OWNED_FIELDS = [
  "ack_wait",
  "max_deliver",
  "max_ack_pending",
  "filter_subject",
  "filter_subjects",
] as const;

export async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  config: ConsumerConfig,
): Promise<void> {
  const name = config.durable_name!;
  const existing = await jsm.consumers.info(stream, name).catch((error) => {
    if (apiCode(error) === JetStreamApiCodes.ConsumerNotFound) return undefined;
    throw context(`read consumer ${name}`, error);
  });
  if (!existing) {
    try {
      await jsm.consumers.add(stream, config);
      return;
    } catch (error) {
      const code = apiCode(error);
      if (code !== CONSUMER_NAME_EXISTS && code !== CONSUMER_ALREADY_EXISTS) {
        throw context(`create consumer ${name}`, error);
      }
    }
  }
  const current = existing?.config ?? (await jsm.consumers.info(stream, name)).config;
  const differs = OWNED_FIELDS.some((field) =>
    JSON.stringify(current[field] ?? emptyOf(field)) !==
      JSON.stringify(config[field] ?? emptyOf(field))
  );
  if (!differs) return;
  const { ack_policy: _a, deliver_policy: _d, replay_policy: _r, durable_name: _n, ...update } =
    config;
  // Update merges into the current config: clear the other filter form so only ours applies.
  if (config.filter_subjects) update.filter_subject = "";
  else if (current.filter_subjects?.length) update.filter_subjects = [];
  await wrap(`update consumer ${name}`, jsm.consumers.update(stream, name, update));
}

function emptyOf(field: (typeof OWNED_FIELDS)[number]): unknown {
  return field === "filter_subjects" ? [] : field === "filter_subject" ? "" : 0;
}

async function wrap<T>(what: string, promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (error) {
    throw context(what, error);
  }
}

function context(what: string, error: unknown): Error {
  const message = error instanceof Error ? error.message : String(error);
  return new Error(`JetStream: cannot ${what}: ${message}`, { cause: error });
}
