import * as grpc from "@grpc/grpc-js";
import { assert, assertEquals, captureRejection } from "../../tests/assert.ts";
import { openBus } from "../runtime/open_bus.ts";
import { GuardynError } from "../platform/errors.ts";
import type { CallContext } from "../platform/grpc_server.ts";
import { memoryLogger } from "../platform/log.ts";
import { RateLimiter } from "../platform/rate_limit.ts";
import type { MailboxDelivery, MailboxDeliveryResult, MailboxStore } from "../store/ports.ts";
import { EnvelopeType, type SendMessageRequest } from "../../proto/gen/guardyn/v1/messaging.ts";
import type { CurrentDevice } from "./device_set.ts";
import { cachedDirectory, type DeviceDirectory } from "./directory.ts";
import { MailboxEvents } from "../kit/mailbox_events.ts";
import { sendMessageHandler } from "./send_service.ts";
import { TEST_RECORD_SECRET } from "../store/conformance/record_keys.ts";

const ctx = (deviceId = "a1") =>
  ({
    auth: { accountId: "alice", deviceId },
    requestId: "r",
    log: memoryLogger(),
    metadata: new grpc.Metadata(),
    signal: new AbortController().signal,
    peer: "ipv4:127.0.0.1:1",
    clientAddress: "127.0.0.1",
  }) satisfies CallContext;

const request = (devices: string[], clientMessageId = crypto.randomUUID()): SendMessageRequest => ({
  recipientAccountId: "bob",
  clientMessageId,
  envelopes: devices.map((deviceId) => ({
    deviceId,
    registrationId: 1,
    type: EnvelopeType.ENVELOPE_TYPE_RATCHET_MESSAGE,
    content: new Uint8Array([1]),
  })),
  syncEnvelopes: [],
  ephemeral: false,
  silent: false,
  ttlSeconds: 0,
  urgent: false,
});

/** A mailbox that writes nothing and answers when told to. */
function heldMailbox() {
  const held: (() => void)[] = [];
  const deliveries: MailboxDelivery[] = [];
  const mailbox = {
    deliver(delivery: MailboxDelivery): Promise<MailboxDeliveryResult> {
      deliveries.push(delivery);
      return new Promise((resolve) =>
        held.push(() =>
          resolve({
            duplicate: false,
            serverTimestampMs: delivery.serverTimestampMs,
            envelopes: delivery.items.map((item, i) => ({
              id: `${i + 1}.${"x".repeat(22)}`,
              recipient: item.recipient,
              seq: i + 1,
              sender: delivery.sender,
              clientMessageId: delivery.clientMessageId,
              type: item.type,
              content: item.content,
              serverTimestampMs: delivery.serverTimestampMs,
              expiresAtMs: delivery.expiresAtMs,
            })),
          })
        )
      );
    },
  } as unknown as MailboxStore;
  return { mailbox, deliveries, release: () => held.splice(0).forEach((go) => go()) };
}

async function setup(directory: DeviceDirectory, mailbox: MailboxStore, maxConcurrentSends = 10) {
  const bus = await openBus({ backend: "memory" }, memoryLogger());
  const log = memoryLogger();
  return sendMessageHandler({
    mailbox,
    directory,
    bus,
    events: new MailboxEvents(bus, log),
    log,
    limits: { envelopeMaxBytes: 1024, maxEnvelopes: 10, mailboxTtlSeconds: 60 },
    idempotencyWindowMs: 86_400_000,
    recordSecret: TEST_RECORD_SECRET,
    limiter: new RateLimiter({ burst: 1000, perSecond: 1000 }),
    now: () => 1_000,
    maxConcurrentSends,
  });
}

const fixed = (devices: CurrentDevice[]): DeviceDirectory => ({
  addressable: () => Promise.resolve(devices),
  forget() {},
});

Deno.test("send service: beyond the concurrent-send limit, sends are refused as UNAVAILABLE", async () => {
  const held = heldMailbox();
  const send = await setup(fixed([{ deviceId: "b1", registrationId: 1 }]), held.mailbox, 2);
  const first = [send(request(["b1"]), ctx()), send(request(["b1"]), ctx())];
  await new Promise((resolve) => setTimeout(resolve, 10));
  const refused = await captureRejection(send(request(["b1"]), ctx()));
  assert(refused instanceof GuardynError);
  assertEquals(refused.code, grpc.status.UNAVAILABLE);
  assert(refused.message.includes("maximum of 2 sends"), refused.message);
  held.release();
  await Promise.all(first);
  // Room again once they finished.
  const again = send(request(["b1"]), ctx());
  await new Promise((resolve) => setTimeout(resolve, 10));
  held.release();
  assertEquals((await again).envelopes.length, 1);
  assertEquals(held.deliveries.length, 3);
});

Deno.test("send service: a stale cached device list never refuses a correct send", async () => {
  let current: CurrentDevice[] = [{ deviceId: "b1", registrationId: 1 }];
  const reads: boolean[] = [];
  const source: DeviceDirectory = {
    addressable: (_accountId, fresh) => {
      reads.push(fresh === true);
      return Promise.resolve(current.map((d) => ({ ...d })));
    },
    forget() {},
  };
  const held = heldMailbox();
  const send = await setup(cachedDirectory(source, { ttlMs: 60_000 }), held.mailbox);
  const sendNow = async (devices: string[]) => {
    const pending = send(request(devices), ctx());
    await new Promise((resolve) => setTimeout(resolve, 5));
    held.release();
    return await pending;
  };
  await sendNow(["b1"]);
  current = [...current, { deviceId: "b2", registrationId: 1 }]; // bob adds a device
  const response = await sendNow(["b1", "b2"]);
  assertEquals(response.envelopes.map((e) => e.recipient?.deviceId), ["b1", "b2"]);
  // A truly wrong set is refused after a fresh read, with the detail.
  const wrong = await captureRejection(send(request(["b1"]), ctx()));
  assert(wrong instanceof GuardynError);
  assertEquals(wrong.reason, "MISMATCHED_DEVICES");
  assert(wrong.detail && wrong.detail.byteLength > 0);
  assert(reads.filter((fresh) => fresh).length >= 2, "refusals are re-checked fresh");
});
