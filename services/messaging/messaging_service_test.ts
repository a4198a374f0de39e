/**
 * The messaging service end to end through gRPC, on the embedded store and on Cassandra +
 * JetStream. The cluster run has TWO instances sharing the store and the bus: senders call
 * instance A, receivers stream from instance B, so every delivery crosses instances.
 */

import * as grpc from "@grpc/grpc-js";
import { assert, assertEquals } from "../../tests/assert.ts";
import { failure, unary } from "../../tests/support/grpc.ts";
import { type Backend, startPlatform, type TestPlatform } from "../../tests/support/platform.ts";
import { deleteStreams, NATS_URL } from "../bus/conformance/nats_server.ts";
import type { BusEvent } from "../bus/subjects.ts";
import { type Clients, clients, PASSWORD } from "../../tests/support/accounts_test_kit.ts";
import { ErrorReason, MismatchedDevices } from "../../proto/gen/guardyn/v1/common.ts";
import { EnvelopeType, type SendStreamResponse } from "../../proto/gen/guardyn/v1/messaging.ts";
import {
  account,
  ClosedReason,
  envelopeFor,
  messageTo,
  type Messaging,
  messagingClient,
  ReceiveSession,
  send,
  SendStreamSession,
  type TestAccount,
  textOf,
} from "./messaging_test_kit.ts";
import { NO_SANITIZERS, waitUntil } from "../../tests/support/wait.ts";

const ENVELOPE_MAX = 4096;
const DIRECTORY_CACHE_MS = 300;

interface Setup {
  a: TestPlatform;
  b: TestPlatform;
  c: Clients;
  /** Senders use instance A, receivers instance B (the same instance when embedded). */
  mA: Messaging;
  mB: Messaging;
  alice: TestAccount;
  bob: TestAccount;
  stream?: string;
}

export function messagingSuite(backend: Backend) {
  let running: Promise<Setup> | undefined;
  const setup = () =>
    running ??= (async () => {
      const id = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
      const env: Record<string, string> = {
        MESSAGING_ENVELOPE_MAX_BYTES: String(ENVELOPE_MAX),
        MESSAGING_SEND_BURST: "1000",
        MESSAGING_SEND_PER_SECOND: "1000",
        MESSAGING_POLL_INTERVAL_MS: "2000",
        MESSAGING_STREAM_OPENS_PER_MINUTE: "6000",
        MESSAGING_DIRECTORY_CACHE_MS: String(DIRECTORY_CACHE_MS),
        GRPC_MAX_REQUEST_BYTES: String(256 * 1024),
        ...(backend === "cluster"
          ? { NATS_STREAM: `GUARDYN_T_${id}`, NATS_SUBJECT_PREFIX: `guardyn.t${id}.events` }
          : {}),
      };
      const a = await startPlatform(["auth", "messaging"], { backend, env });
      const b = backend === "cluster" ? await startPlatform(["messaging"], { shared: a }) : a;
      const c = clients(a.address);
      const [alice, bob] = [await account(c, 2), await account(c, 2)];
      return {
        a,
        b,
        c,
        mA: messagingClient(a.address),
        mB: messagingClient(b.address),
        alice,
        bob,
        ...(backend === "cluster" ? { stream: env.NATS_STREAM } : {}),
      };
    })();
  const test = (name: string, fn: (s: Setup) => Promise<void>) =>
    Deno.test({
      name: `messaging (${backend}): ${name}`,
      ...NO_SANITIZERS,
      fn: async () => fn(await setup()),
    });

  /** Opens a stream, takes the whole backlog, acknowledges it and closes: a clean mailbox. */
  async function drain(m: Messaging, token: string): Promise<void> {
    const session = new ReceiveSession(m, token);
    await session.waitForDrained();
    session.ackAll();
    await session.close();
  }

  test("two accounts with two devices each exchange messages", async (s) => {
    const [aliceLaptop, alicePhone] = s.alice.devices as [
      typeof s.alice.devices[0],
      typeof s.alice.devices[0],
    ];
    const [bobLaptop, bobPhone] = s.bob.devices as [
      typeof s.bob.devices[0],
      typeof s.bob.devices[0],
    ];
    const streams = new Map(
      [aliceLaptop, alicePhone, bobLaptop, bobPhone].map((d) => [
        d.deviceId,
        new ReceiveSession(s.mB, d.accessToken),
      ]),
    );
    for (const stream of streams.values()) await stream.waitForDrained();
    const hello = await send(s.mA, aliceLaptop, messageTo(aliceLaptop, s.alice, s.bob, "hello"));
    assertEquals(hello.duplicate, false);
    assertEquals(
      hello.envelopes.map((e) => e.recipient?.deviceId),
      [bobLaptop.deviceId, bobPhone.deviceId, alicePhone.deviceId],
    );
    const reply = await send(s.mA, bobPhone, messageTo(bobPhone, s.bob, s.alice, "hi back"));
    const at = (device: { deviceId: string }) => streams.get(device.deviceId)!;
    await at(bobLaptop).waitForMail(2); // alice's message and bob's own sync copy
    await at(bobPhone).waitForMail(1);
    await at(aliceLaptop).waitForMail(1);
    await at(alicePhone).waitForMail(2);

    const [forBobLaptop, syncForBobLaptop] = at(bobLaptop).mail();
    assertEquals(textOf(forBobLaptop!), `hello for ${bobLaptop.deviceId}`);
    assertEquals(forBobLaptop!.sender, {
      accountId: s.alice.accountId,
      deviceId: aliceLaptop.deviceId,
    });
    assertEquals(forBobLaptop!.type, EnvelopeType.ENVELOPE_TYPE_RATCHET_MESSAGE);
    assertEquals(forBobLaptop!.serverTimestampMs, hello.serverTimestampMs);
    assertEquals(forBobLaptop!.id, hello.envelopes[0]!.envelopeId);
    assertEquals(textOf(syncForBobLaptop!), `hi back for ${bobLaptop.deviceId}`);
    assert(syncForBobLaptop!.seq > forBobLaptop!.seq, "seq increases per device");
    assertEquals(at(bobPhone).mail().map(textOf), [`hello for ${bobPhone.deviceId}`]);
    assertEquals(at(aliceLaptop).mail().map(textOf), [`hi back for ${aliceLaptop.deviceId}`]);
    assertEquals(at(aliceLaptop).mail()[0]!.id, reply.envelopes[0]!.envelopeId);
    assertEquals(
      at(alicePhone).mail().map(textOf),
      [`hello for ${alicePhone.deviceId}`, `hi back for ${alicePhone.deviceId}`],
    );
    // Nothing more arrives, and acknowledged mail is gone on the next stream.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assertEquals(at(bobLaptop).mail().length, 2);
    for (const stream of streams.values()) stream.ackAll();
    const pinged = at(bobLaptop);
    pinged.ping(7);
    await pinged.waitFor(() => pinged.events.some((e) => e.event?.$case === "pong"), "pong");
    const pong = pinged.events.find((e) => e.event?.$case === "pong")!.event!.value as {
      nonce: number;
      serverTimeMs: number;
    };
    assertEquals(pong.nonce, 7);
    assert(Math.abs(pong.serverTimeMs - Date.now()) < 60_000, "server time in the pong");
    for (const stream of streams.values()) {
      const end = await stream.close();
      assertEquals(end.code, grpc.status.OK, "a half-closed stream ends with OK");
    }
    const again = new ReceiveSession(s.mB, bobLaptop.accessToken);
    await again.waitForDrained();
    assertEquals(again.drainedCount(), 0);
    await again.close();
  });

  test("an offline device receives everything in order on reconnect; unacked mail comes again", async (s) => {
    const sender = s.alice.devices[0]!;
    const phone = s.bob.devices[1]!;
    const sent = [];
    for (let i = 0; i < 30; i++) {
      sent.push(await send(s.mA, sender, messageTo(sender, s.alice, s.bob, `m${i}`)));
    }
    const first = new ReceiveSession(s.mB, phone.accessToken);
    await first.waitForDrained();
    assertEquals(first.drainedCount(), 30);
    const texts = first.mail().map(textOf);
    assertEquals(texts, sent.map((_, i) => `m${i} for ${phone.deviceId}`));
    const seqs = first.mail().map((e) => e.seq);
    assert(seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]!), "strictly increasing seq");
    const drainedAt = first.events.findIndex((e) => e.event?.$case === "queueDrained");
    assertEquals(drainedAt, 30, "QueueDrained follows the backlog");
    // Acknowledge the first half only, then reconnect: the second half comes again.
    first.ack(first.mail().slice(0, 15).map((e) => e.id));
    await first.close();
    const second = new ReceiveSession(s.mB, phone.accessToken);
    await second.waitForDrained();
    assertEquals(second.mail().map((e) => e.id), first.mail().slice(15).map((e) => e.id));
    second.ackAll();
    await second.close();
    await drain(s.mB, s.bob.devices[0]!.accessToken);
    await drain(s.mB, s.alice.devices[1]!.accessToken);
  });

  test("a second stream for a device closes the first, also across instances", async (s) => {
    const laptop = s.bob.devices[0]!;
    const first = new ReceiveSession(s.mB, laptop.accessToken);
    await first.waitForDrained();
    const second = new ReceiveSession(s.mA, laptop.accessToken);
    await second.waitForDrained();
    const end = await first.ended;
    assertEquals(end.code, grpc.status.OK);
    assertEquals(first.closedReason(), ClosedReason.CLOSED_REASON_REPLACED);
    const sender = s.alice.devices[0]!;
    const request = messageTo(sender, s.alice, s.bob, "after takeover", { syncEnvelopes: [] });
    await send(s.mA, sender, request);
    await second.waitForMail(1);
    assertEquals(first.mail().length, 0);
    // The same on one instance.
    const third = new ReceiveSession(s.mA, laptop.accessToken);
    await third.waitForMail(1);
    await second.ended;
    assertEquals(second.closedReason(), ClosedReason.CLOSED_REASON_REPLACED);
    third.ackAll();
    await third.close();
    await drain(s.mB, s.bob.devices[1]!.accessToken);
  });

  test("a device cannot read or acknowledge another device's mailbox", async (s) => {
    const sender = s.alice.devices[0]!;
    const [laptop, phone] = [s.bob.devices[0]!, s.bob.devices[1]!];
    const sent = await send(
      s.mA,
      sender,
      messageTo(sender, s.alice, s.bob, "private", { syncEnvelopes: [] }),
    );
    const laptopId = sent.envelopes.find((e) => e.recipient?.deviceId === laptop.deviceId)!;
    // The phone's stream shows the phone's copy only, and acking the laptop's id does nothing.
    const phoneStream = new ReceiveSession(s.mB, phone.accessToken);
    await phoneStream.waitForDrained();
    assertEquals(phoneStream.mail().map(textOf), [`private for ${phone.deviceId}`]);
    phoneStream.ack([laptopId.envelopeId]);
    await phoneStream.close();
    // Alice (another account) acking it does nothing either.
    const intruder = new ReceiveSession(s.mB, sender.accessToken);
    await intruder.waitForDrained();
    intruder.ack([laptopId.envelopeId]);
    await intruder.close();
    const laptopStream = new ReceiveSession(s.mB, laptop.accessToken);
    await laptopStream.waitForDrained();
    assertEquals(laptopStream.mail().map((e) => e.id), [laptopId.envelopeId]);
    laptopStream.ackAll();
    await laptopStream.close();
    await drain(s.mB, phone.accessToken);
  });

  test("bad requests get the right status and change nothing", async (s) => {
    const sender = s.alice.devices[0]!;
    const [laptop, phone] = [s.bob.devices[0]!, s.bob.devices[1]!];
    const good = () => messageTo(sender, s.alice, s.bob, "x", { syncEnvelopes: [] });
    const refused = async (request: ReturnType<typeof good>, token = sender.accessToken) =>
      await failure(unary(s.mA.sendMessage.bind(s.mA), request, token));

    const anonymous = await failure(unary(s.mA.sendMessage.bind(s.mA), good()));
    assertEquals([anonymous.code, anonymous.reason], [
      grpc.status.UNAUTHENTICATED,
      "TOKEN_MISSING",
    ]);
    const forged = await refused(good(), "not.a.token");
    assertEquals([forged.code, forged.reason], [grpc.status.UNAUTHENTICATED, "TOKEN_INVALID"]);

    const big = good();
    big.envelopes[0]!.content = new Uint8Array(ENVELOPE_MAX + 1);
    const oversized = await refused(big);
    assertEquals(oversized.code, grpc.status.INVALID_ARGUMENT);
    assert(oversized.details.includes(`${ENVELOPE_MAX}-byte envelope limit`), oversized.details);
    const huge = good();
    huge.envelopes[0]!.content = new Uint8Array(300 * 1024);
    assertEquals((await refused(huge)).code, grpc.status.RESOURCE_EXHAUSTED);

    const mls = good();
    mls.envelopes[0]!.type = EnvelopeType.ENVELOPE_TYPE_MLS_WELCOME;
    assertEquals((await refused(mls)).code, grpc.status.INVALID_ARGUMENT);
    const badId = good();
    badId.clientMessageId = "spaces are not allowed";
    assertEquals((await refused(badId)).code, grpc.status.INVALID_ARGUMENT);

    const missing = good();
    missing.envelopes = [
      envelopeFor(laptop, "x"),
      envelopeFor({ deviceId: "no-such-device" }, "x"),
    ];
    const mismatch = await refused(missing);
    assertEquals([mismatch.code, mismatch.reason], [
      grpc.status.FAILED_PRECONDITION,
      "MISMATCHED_DEVICES",
    ]);
    const detail = await detailOf(unary(s.mA.sendMessage.bind(s.mA), missing, sender.accessToken));
    assertEquals(detail.missingDevices, [{ accountId: s.bob.accountId, deviceId: phone.deviceId }]);
    assertEquals(detail.extraDevices, [{ accountId: s.bob.accountId, deviceId: "no-such-device" }]);

    const stale = good();
    stale.envelopes[1] = envelopeFor(phone, "x", 999);
    const staleError = await refused(stale);
    assertEquals([staleError.code, staleError.reason], [
      grpc.status.FAILED_PRECONDITION,
      "STALE_DEVICES",
    ]);
    const syncMissing = messageTo(sender, s.alice, s.bob, "x");
    syncMissing.syncEnvelopes = [envelopeFor({ deviceId: "ghost" }, "x")];
    const syncDetail = await detailOf(
      unary(s.mA.sendMessage.bind(s.mA), syncMissing, sender.accessToken),
    );
    assertEquals(syncDetail.extraDevices, [{ accountId: s.alice.accountId, deviceId: "ghost" }]);
    assertEquals(syncDetail.missingDevices, [{
      accountId: s.alice.accountId,
      deviceId: s.alice.devices[1]!.deviceId,
    }]);

    const nobody = good();
    nobody.recipientAccountId = crypto.randomUUID();
    assertEquals((await refused(nobody)).code, grpc.status.NOT_FOUND);

    // Receive: no token, a message with no kind, an oversized ack.
    const noToken = new ReceiveSession(s.mB, undefined);
    assertEquals((await noToken.ended).reason, "TOKEN_MISSING");
    const empty = new ReceiveSession(s.mB, laptop.accessToken);
    await empty.waitForDrained();
    empty.call.write({});
    assertEquals((await empty.ended).code, grpc.status.INVALID_ARGUMENT);
    const flood = new ReceiveSession(s.mB, laptop.accessToken);
    await flood.waitForDrained();
    flood.ack(Array.from({ length: 501 }, (_, i) => `${i + 1}.x`));
    assertEquals((await flood.ended).code, grpc.status.INVALID_ARGUMENT);

    // Nothing was written anywhere.
    for (const device of [...s.bob.devices, ...s.alice.devices]) {
      const count = await s.a.platform.deps.store.mailbox.count(
        { accountId: device.accountId, deviceId: device.deviceId },
        Date.now(),
      );
      assertEquals(count, 0, `mailbox of ${device.deviceId}`);
    }
  });

  test("a retry with the same client message id is answered from the first send", async (s) => {
    const sender = s.alice.devices[0]!;
    const request = messageTo(sender, s.alice, s.bob, "once");
    const first = await send(s.mA, sender, request);
    const retry = await send(s.mA, sender, request);
    assertEquals(retry.duplicate, true);
    assertEquals(retry.serverTimestampMs, first.serverTimestampMs);
    assertEquals(retry.envelopes, first.envelopes);
    const changed = {
      ...request,
      envelopes: request.envelopes.map((e) => ({ ...e, content: new Uint8Array([9]) })),
    };
    const conflict = await failure(send(s.mA, sender, changed));
    assertEquals(conflict.code, grpc.status.ALREADY_EXISTS);
    const stream = new ReceiveSession(s.mB, s.bob.devices[0]!.accessToken);
    await stream.waitForDrained();
    assertEquals(stream.mail().map(textOf), [`once for ${s.bob.devices[0]!.deviceId}`]);
    stream.ackAll();
    await stream.close();
    await drain(s.mB, s.bob.devices[1]!.accessToken);
    await drain(s.mB, s.alice.devices[1]!.accessToken);
  });

  test("SendStream: each send is answered by request id and delivered; refusals leave the stream open", async (s) => {
    const sender = s.alice.devices[0]!;
    const [laptop, phone] = [s.bob.devices[0]!, s.bob.devices[1]!];
    const receivers = [laptop, phone, s.alice.devices[1]!].map((d) =>
      new ReceiveSession(s.mB, d.accessToken)
    );
    for (const receiver of receivers) await receiver.waitForDrained();
    const stream = new SendStreamSession(s.mA, sender.accessToken);
    const good = Array.from({ length: 20 }, (_, i) => messageTo(sender, s.alice, s.bob, `m${i}`));
    const mismatched = messageTo(sender, s.alice, s.bob, "bad");
    mismatched.envelopes = [envelopeFor(laptop, "bad")];
    const oversized = messageTo(sender, s.alice, s.bob, "big");
    oversized.envelopes[0]!.content = new Uint8Array(ENVELOPE_MAX + 1);
    const conflicting = {
      ...good[0]!,
      envelopes: good[0]!.envelopes.map((e) => ({ ...e, content: new Uint8Array([7]) })),
    };
    // All written at once: answers come back by id, whatever their order.
    const [sent, refusedMismatch, refusedSize, refusedEmpty] = await Promise.all([
      Promise.all(good.map((request) => stream.send(request))),
      stream.send(mismatched),
      stream.send(oversized),
      stream.send(undefined),
    ]);
    for (const answer of sent) assertEquals(answer.result?.$case, "sent");
    const failed = (answer: SendStreamResponse) => {
      assert(answer.result?.$case === "failed", `expected a failure, got ${answer.result?.$case}`);
      return answer.result.value;
    };
    const mismatch = failed(refusedMismatch);
    assertEquals([mismatch.code, mismatch.reason], [
      grpc.status.FAILED_PRECONDITION,
      ErrorReason.ERROR_REASON_MISMATCHED_DEVICES,
    ]);
    assertEquals(MismatchedDevices.decode(mismatch.detail).missingDevices, [
      { accountId: s.bob.accountId, deviceId: phone.deviceId },
    ]);
    const size = failed(refusedSize);
    assertEquals(size.code, grpc.status.INVALID_ARGUMENT);
    assert(size.message.includes(`${ENVELOPE_MAX}-byte envelope limit`), size.message);
    assertEquals(failed(refusedEmpty).code, grpc.status.INVALID_ARGUMENT);

    // Idempotency as with SendMessage: a retry is a duplicate, changed content a conflict.
    const retry = await stream.send(good[0]!);
    assert(retry.result?.$case === "sent" && retry.result.value.duplicate);
    assert(sent[0]!.result?.$case === "sent");
    assertEquals(retry.result.value.envelopes, sent[0]!.result.value.envelopes);
    assertEquals(failed(await stream.send(conflicting)).code, grpc.status.ALREADY_EXISTS);
    // The stream still works after every refusal.
    const after = await stream.send(messageTo(sender, s.alice, s.bob, "after"));
    assertEquals(after.result?.$case, "sent");
    assertEquals((await stream.close()).code, grpc.status.OK);

    // Delivered once each, copies included; the refused ones nowhere.
    const expected = (device: { deviceId: string }) =>
      [...good.map((_, i) => `m${i}`), "after"].map((t) => `${t} for ${device.deviceId}`);
    for (const [i, device] of [laptop, phone, s.alice.devices[1]!].entries()) {
      await receivers[i]!.waitForMail(21);
      assertEquals(receivers[i]!.mail().map(textOf).sort(), expected(device).sort());
      receivers[i]!.ackAll();
      await receivers[i]!.close();
    }
  });

  test("SendStream: no token ends it UNAUTHENTICATED; past its in-flight bound nothing is lost", async (s) => {
    const anonymous = new SendStreamSession(s.mA, undefined);
    assertEquals([(await anonymous.ended).code, (await anonymous.ended).reason], [
      grpc.status.UNAUTHENTICATED,
      "TOKEN_MISSING",
    ]);
    const sender = s.alice.devices[0]!;
    const stream = new SendStreamSession(s.mA, sender.accessToken);
    const requests = Array.from(
      { length: 192 },
      (_, i) => messageTo(sender, s.alice, s.bob, `n${i}`, { syncEnvelopes: [] }),
    );
    try {
      // Three times the 64 requests a stream handles at once, written without waiting.
      let answers = await Promise.all(requests.map((request) => stream.send(request)));
      assertEquals(new Set(answers.map((a) => a.requestId)).size, 192, "every request answered");
      // A slow store may refuse some as retryable (UNAVAILABLE, DEADLINE_EXCEEDED): a client
      // retries those with the same client message id, which never writes twice.
      const retryable = new Set<number>([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]);
      let pending = requests;
      for (let attempt = 0; attempt < 5; attempt++) {
        for (const { result } of answers) {
          assert(
            result?.$case === "sent" || retryable.has(result?.value.code ?? -1),
            `only retryable refusals: ${JSON.stringify(result)}`,
          );
        }
        pending = pending.filter((_, i) => answers[i]!.result?.$case !== "sent");
        if (pending.length === 0) break;
        answers = await Promise.all(pending.map((request) => stream.send(request)));
      }
      assertEquals(pending.length, 0, "every send went through");
      assertEquals((await stream.close()).code, grpc.status.OK);
      for (const device of s.bob.devices) {
        const receiver = new ReceiveSession(s.mB, device.accessToken);
        await receiver.waitForMail(192, 30_000);
        const mail = receiver.mail();
        receiver.ackAll();
        await receiver.close();
        assertEquals(mail.length, 192, "each message once per device");
        assertEquals(new Set(mail.map((e) => e.clientMessageId)).size, 192);
      }
    } finally {
      // Whatever happened, leave the mailboxes empty for the next test.
      for (const device of s.bob.devices) await drain(s.mB, device.accessToken);
    }
  });

  test("ephemeral envelopes reach open streams only and are never stored", async (s) => {
    const sender = s.alice.devices[0]!;
    const [laptop, phone] = [s.bob.devices[0]!, s.bob.devices[1]!];
    const online = new ReceiveSession(s.mB, phone.accessToken);
    await online.waitForDrained();
    const typing = await send(
      s.mA,
      sender,
      messageTo(sender, s.alice, s.bob, "typing", { ephemeral: true, syncEnvelopes: [] }),
    );
    const ephemeral = () => online.envelopes().filter((e) => e.ephemeral);
    await online.waitFor(() => ephemeral().length === 1, "the typing envelope");
    const [signal] = ephemeral();
    assertEquals([signal!.ephemeral, signal!.seq, textOf(signal!)], [
      true,
      0,
      `typing for ${phone.deviceId}`,
    ]);
    assertEquals(signal!.id, typing.envelopes[1]!.envelopeId);
    await online.close();
    // The offline laptop never sees it; nothing is stored for either device.
    const later = new ReceiveSession(s.mB, laptop.accessToken);
    await later.waitForDrained();
    assertEquals(later.drainedCount(), 0);
    await later.close();
  });

  test("an envelope past its ttl_seconds is never delivered", async (s) => {
    const gina = await account(s.c, 1);
    const device = gina.devices[0]!;
    const sender = s.alice.devices[0]!;
    const to = (text: string) => messageTo(sender, s.alice, gina, text, { syncEnvelopes: [] });
    await send(s.mA, sender, { ...to("offer"), ttlSeconds: 1 });
    await send(s.mA, sender, to("text"));
    await new Promise((resolve) => setTimeout(resolve, 1_300));
    const later = new ReceiveSession(s.mB, device.accessToken);
    await later.waitForDrained();
    assertEquals(later.envelopes().map(textOf), [`text for ${device.deviceId}`]);
    later.ackAll();
    await later.close();
  });

  test("revoking a device ends its stream and purges its mailbox", async (s) => {
    const carol = await account(s.c, 2);
    const [laptop, phone] = carol.devices as [typeof carol.devices[0], typeof carol.devices[0]];
    const sender = s.alice.devices[0]!;
    await send(s.mA, sender, messageTo(sender, s.alice, carol, "before", { syncEnvelopes: [] }));
    const stream = new ReceiveSession(s.mB, phone.accessToken);
    await stream.waitForMail(1);
    await unary(
      s.c.auth.revokeDevice.bind(s.c.auth),
      { deviceId: phone.deviceId },
      laptop.accessToken,
    );
    const end = await stream.ended;
    assertEquals(end.code, grpc.status.OK);
    assertEquals(stream.closedReason(), ClosedReason.CLOSED_REASON_DEVICE_REVOKED);
    const store = s.a.platform.deps.store.mailbox;
    await waitUntil(
      async () =>
        await store.count({ accountId: carol.accountId, deviceId: phone.deviceId }, Date.now()) ===
          0,
      "the revoked device's mailbox purged",
    );
    // Sending to carol now needs the laptop only (once every instance's device cache expired).
    await new Promise((resolve) => setTimeout(resolve, DIRECTORY_CACHE_MS + 50));
    const old = messageTo(sender, s.alice, carol, "after", { syncEnvelopes: [] });
    assertEquals((await failure(send(s.mA, sender, old))).reason, "MISMATCHED_DEVICES");
    await send(s.mA, sender, { ...old, envelopes: [envelopeFor(laptop, "after")] });
    const laptopStream = new ReceiveSession(s.mB, laptop.accessToken);
    await laptopStream.waitForMail(2);
    laptopStream.ackAll();
    await laptopStream.close();
  });

  test("deleting an account purges its mailboxes", async (s) => {
    const dave = await account(s.c, 2);
    const sender = s.alice.devices[0]!;
    await send(s.mA, sender, messageTo(sender, s.alice, dave, "bye", { syncEnvelopes: [] }));
    const store = s.a.platform.deps.store.mailbox;
    const refs = dave.devices.map((d) => ({ accountId: d.accountId, deviceId: d.deviceId }));
    for (const ref of refs) assertEquals(await store.count(ref, Date.now()), 1);
    const stream = new ReceiveSession(s.mB, dave.devices[1]!.accessToken);
    await stream.waitForMail(1);
    await unary(
      s.c.auth.deleteAccount.bind(s.c.auth),
      { password: PASSWORD },
      dave.devices[0]!.accessToken,
    );
    await stream.ended;
    assertEquals(stream.closedReason(), ClosedReason.CLOSED_REASON_DEVICE_REVOKED);
    for (const ref of refs) {
      await waitUntil(async () => await store.count(ref, Date.now()) === 0, "mailbox purged");
    }
    // Once every instance's device cache has expired, the account is unknown.
    await new Promise((resolve) => setTimeout(resolve, DIRECTORY_CACHE_MS + 50));
    assertEquals(
      (await failure(send(s.mA, sender, messageTo(sender, s.alice, dave, "x")))).code,
      grpc.status.NOT_FOUND,
    );
  });

  test("mailbox events say which device got or took mail, and nothing else", async (s) => {
    const frank = await account(s.c, 1);
    const device = frank.devices[0]!;
    const sender = s.alice.devices[0]!;
    const events: BusEvent[] = [];
    const consumer = await s.a.platform.deps.bus.consume(
      `test-mailbox-${crypto.randomUUID().slice(0, 8)}`,
      ["mailbox.written", "mailbox.acked"],
      (delivery) => {
        if ("deviceId" in delivery.event && delivery.event.deviceId === device.deviceId) {
          events.push(delivery.event);
        }
        return Promise.resolve();
      },
    );
    try {
      const to = (text: string, silent: boolean) =>
        messageTo(sender, s.alice, frank, text, { syncEnvelopes: [], silent });
      await send(s.mA, sender, to("one", false));
      await send(s.mA, sender, to("two", false));
      await send(s.mA, sender, to("receipt", true)); // silent: stored, but no push-worthy event
      const stream = new ReceiveSession(s.mB, device.accessToken);
      await stream.waitForMail(3);
      stream.ackAll();
      await stream.close();
      const total = (kind: string) =>
        events.filter((e) => e.kind === kind).reduce((n, e) => n + ("count" in e ? e.count : 0), 0);
      await waitUntil(
        () => Promise.resolve(total("mailbox.written") === 2 && total("mailbox.acked") === 3),
        "two written (the silent one left out) and three acked",
      );
      for (const event of events) {
        assertEquals(Object.keys(event).sort(), ["accountId", "atMs", "count", "deviceId", "kind"]);
      }
      // An incoming call asks for an urgent push: the event says so, and nothing more.
      await send(s.mA, sender, { ...to("ring", false), urgent: true, ttlSeconds: 60 });
      await waitUntil(
        () => Promise.resolve(events.some((e) => e.kind === "mailbox.written" && e.urgent)),
        "an urgent written event",
      );
      await drain(s.mB, device.accessToken);
    } finally {
      await consumer.unsubscribe();
    }
  });

  if (backend === "embedded") {
    test("at most 500 envelopes are in flight until acknowledgements arrive", async (s) => {
      const eve = await account(s.c, 1);
      const sender = s.alice.devices[1]!;
      const total = 620;
      for (let i = 0; i < total; i++) {
        await send(s.mA, sender, messageTo(sender, s.alice, eve, `n${i}`, { syncEnvelopes: [] }));
      }
      const stream = new ReceiveSession(s.mB, eve.devices[0]!.accessToken);
      await stream.waitForMail(500);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assertEquals(stream.mail().length, 500);
      assertEquals(stream.drainedCount(), undefined, "the backlog is not drained yet");
      stream.ack(stream.mail().slice(0, 200).map((e) => e.id));
      await stream.waitForDrained();
      assertEquals(stream.drainedCount(), total);
      assertEquals(
        stream.mail().map(textOf),
        Array.from({ length: total }, (_, i) => `n${i} for ${eve.devices[0]!.deviceId}`),
      );
      stream.ackAll();
      await stream.close();
    });

    test("half-duplex: Acknowledge on any instance deletes mail and frees the stream's window", async (s) => {
      const fay = await account(s.c, 1);
      const sender = s.alice.devices[1]!;
      const total = 560;
      for (let i = 0; i < total; i++) {
        await send(s.mA, sender, messageTo(sender, s.alice, fay, `h${i}`, { syncEnvelopes: [] }));
      }
      const token = fay.devices[0]!.accessToken;
      // The stream on instance b, the acknowledgements through instance a.
      const stream = new ReceiveSession(s.mB, token, true);
      await stream.waitForMail(500);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assertEquals(stream.mail().length, 500);
      const acknowledge = (ids: string[]) =>
        unary(s.mA.acknowledge.bind(s.mA), { envelopeIds: ids }, token);
      await acknowledge(stream.mail().slice(0, 100).map((e) => e.id));
      await stream.waitForDrained();
      assertEquals(stream.drainedCount(), total);
      await acknowledge(stream.mail().slice(100, 500).map((e) => e.id));
      await acknowledge(stream.mail().slice(500).map((e) => e.id));
      const mailbox = s.a.platform.deps.store.mailbox;
      assertEquals(await mailbox.count(fay.devices[0]!, Date.now()), 0);
      const refused = await acknowledge([]).then(() => undefined, (error) => error);
      assertEquals(refused?.code, grpc.status.INVALID_ARGUMENT);
      stream.call.cancel();
      await stream.ended;
    });
  }

  Deno.test({
    name: `messaging (${backend}): stop`,
    ...NO_SANITIZERS,
    fn: async () => {
      if (!running) return;
      const s = await running;
      // The suite's long-used connections close before any server sends GOAWAY: Deno 2.9.6's
      // HTTP/2 can crash on a GOAWAY over a connection that carried hundreds of calls
      // (docs/MESSAGING.md). The stream below gets a fresh connection of its own.
      s.mA.close();
      s.mB.close();
      s.c.close();
      await new Promise((resolve) => setTimeout(resolve, 100));
      const fresh = messagingClient(s.b.address);
      // A stream open while its instance stops is told why before the status arrives.
      const open = new ReceiveSession(fresh, s.bob.devices[0]!.accessToken);
      await open.waitForDrained();
      const stopping = s.b.stop();
      const end = await open.ended;
      assertEquals(open.closedReason(), ClosedReason.CLOSED_REASON_SHUTTING_DOWN);
      assertEquals([end.code, end.reason], [grpc.status.UNAVAILABLE, "SHUTTING_DOWN"]);
      await stopping;
      fresh.close();
      if (s.b !== s.a) await s.a.stop();
      if (s.stream) await deleteStreams(NATS_URL, [s.stream]);
    },
  });
}

async function detailOf(call: Promise<unknown>): Promise<MismatchedDevices> {
  try {
    await call;
  } catch (error) {
    const raw = (error as grpc.ServiceError).metadata?.get("guardyn-error-detail-bin")[0];
    assert(raw instanceof Uint8Array, "a MismatchedDevices detail is attached");
    return MismatchedDevices.decode(raw);
  }
  throw new Error("expected the call to fail");
}

messagingSuite("embedded");
messagingSuite("cluster");
