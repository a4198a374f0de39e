import {
  checkStreamSettings,
  consumerConfig,
  STREAM_DEFAULTS,
  streamConfig,
  type StreamSettings,
  supportsMultipleFilters,
} from "./jetstream_topology.ts";
import { deliveryPolicy } from "./delivery.ts";
import { MAX_EVENT_BYTES } from "./subjects.ts";
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";

const settings: StreamSettings = {
  name: "EVENTS",
  subjectPrefix: "guardyn.events",
  replicas: 3,
  ...STREAM_DEFAULTS,
};

Deno.test("multiple consumer filters need nats-server 2.10", () => {
  assert(!supportsMultipleFilters("2.9.10"));
  assert(supportsMultipleFilters("2.10.0"));
  assert(supportsMultipleFilters("v2.11.4"));
  assert(supportsMultipleFilters("3.0.0"));
  assert(!supportsMultipleFilters(undefined));
  assert(!supportsMultipleFilters("nonsense"));
});

Deno.test("the stream is file-backed, bounded, de-duplicating, and drops the oldest when full", () => {
  const config = streamConfig(settings);
  assertEquals(config.subjects, ["guardyn.events.>"]);
  assertEquals(config.storage, "file");
  assertEquals(config.retention, "limits");
  assertEquals(config.discard, "old");
  assertEquals(config.num_replicas, 3);
  assertEquals(config.max_age, STREAM_DEFAULTS.maxAgeMs * 1_000_000);
  assertEquals(config.duplicate_window, STREAM_DEFAULTS.duplicateWindowMs * 1_000_000);
  assertEquals(config.max_bytes, STREAM_DEFAULTS.maxBytes);
  assertEquals(config.max_msg_size, MAX_EVENT_BYTES);
});

Deno.test("stream settings are checked with messages naming the field", () => {
  assertThrows(() => checkStreamSettings({ ...settings, name: "A.B" }), /stream name/);
  assertThrows(() => checkStreamSettings({ ...settings, subjectPrefix: "a..b" }), /prefix/);
  assertThrows(() => checkStreamSettings({ ...settings, subjectPrefix: "a.*" }), /prefix/);
  assertThrows(() => checkStreamSettings({ ...settings, replicas: 0 }), /replicas/);
  assertThrows(
    () => checkStreamSettings({ ...settings, maxAgeMs: 60_000, duplicateWindowMs: 120_000 }),
    /duplicateWindowMs/,
  );
});

Deno.test("a consumer filters on its kinds with the form the server supports", () => {
  const policy = deliveryPolicy({ ackWaitMs: 2_000, maxDeliver: 4, maxAckPending: 10 });
  const one = consumerConfig("push", ["mailbox.written"], "p", policy, false);
  assertEquals(one.filter_subject, "p.mailbox.written");
  assertEquals(one.filter_subjects, undefined);
  assertEquals(one.durable_name, "push");
  assertEquals(one.ack_policy, "explicit");
  assertEquals(one.deliver_policy, "all");
  assertEquals(one.ack_wait, 2_000_000_000);
  assertEquals(one.max_deliver, 4);
  assertEquals(one.max_ack_pending, 10);
  const kinds = ["mailbox.written", "device.revoked"] as const;
  const modern = consumerConfig("push", [...kinds], "p", policy, true);
  assertEquals(modern.filter_subjects, ["p.mailbox.written", "p.device.revoked"]);
  assertEquals(modern.filter_subject, undefined);
  const legacy = consumerConfig("push", [...kinds], "p", policy, false);
  assertEquals(legacy.filter_subject, "p.>");
});
