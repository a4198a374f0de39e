import { assert, assertEquals, captureError } from "../tests/assert.ts";
import { CallBook, type CallEvent } from "./calls.ts";
import { type Content, decodeContent, encodeContent } from "./content.ts";

const alicePhone = { accountId: "alice", deviceId: "a-phone" };
const bobPhone = { accountId: "bob", deviceId: "b-phone" };
const bobLaptop = { accountId: "bob", deviceId: "b-laptop" };
const carol = { accountId: "carol", deviceId: "c-phone" };
const OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n";

/** Alice calls Bob at t=1000; Bob's phone and laptop both hold the offer. */
function ringing() {
  const alice = new CallBook(alicePhone);
  const phone = new CallBook(bobPhone);
  const laptop = new CallBook(bobLaptop);
  const { call, send } = alice.startOutgoing({
    id: "call-1",
    peer: "bob",
    media: "audio",
    sdp: OFFER,
    ringMs: 30_000,
  }, 1_000);
  const offer = (send.content as Extract<Content, { kind: "call" }>).signal;
  const rings = [phone, laptop].map((book) =>
    book.receive(alicePhone, 1_010, "call-1", offer, 1_050)
  );
  return { alice, phone, laptop, call, send, offer, rings };
}

const signalOf = (content: Content | undefined) =>
  (content as Extract<Content, { kind: "call" }>).signal;
const types = (events: CallEvent[]) => events.map((e) => e.type);

Deno.test("calls: an offer rings every device of the callee, urgently and only for the ring", () => {
  const { send, rings, phone } = ringing();
  assertEquals([send.peer, send.ephemeral, send.urgent, send.ttlSeconds], ["bob", false, true, 30]);
  for (const ring of rings) {
    assertEquals(types(ring.events), ["call-incoming"]);
    assertEquals((ring.events[0] as { sdp: string }).sdp, OFFER);
  }
  const call = phone.get("call-1")!;
  assertEquals([call.direction, call.state, call.peerDevice, call.ringUntilMs], [
    "in",
    "ringing",
    "a-phone",
    31_010, // from the server's receive time, not the caller's clock
  ]);
});

Deno.test("calls: answering on one device stops the others and connects the caller", () => {
  const { alice, phone, laptop } = ringing();
  const { send } = phone.answer("call-1", "answer-sdp", 2_000);
  assertEquals(signalOf(send.content), { op: "answer", sdp: "answer-sdp", device: "a-phone" });
  assertEquals(signalOf(send.syncContent), { op: "handled", how: "answered" });
  assertEquals([send.ephemeral, send.urgent], [false, false]);
  const atLaptop = laptop.receive(bobPhone, 2_010, "call-1", signalOf(send.syncContent), 2_020);
  assertEquals(types(atLaptop.events), ["call-ended"]);
  assertEquals(laptop.get("call-1")!.endReason, "answered-elsewhere");
  const atAlice = alice.receive(bobPhone, 2_010, "call-1", signalOf(send.content), 2_030);
  assertEquals(types(atAlice.events), ["call-answered"]);
  assertEquals(alice.get("call-1")!.peerDevice, "b-phone");
  assertEquals(alice.get("call-1")!.state, "active");
  // The laptop's answer, had it raced, is ignored: the call has its two ends.
  const late = alice.receive(bobLaptop, 2_040, "call-1", {
    op: "answer",
    sdp: "other",
    device: "a-phone",
  }, 2_050);
  assertEquals(late.events, []);
});

Deno.test("calls: decline reaches the caller; the callee's other devices stop ringing", () => {
  const { alice, phone, laptop } = ringing();
  const { send } = phone.end("call-1", 3_000);
  assertEquals(signalOf(send!.content), { op: "reject", reason: "declined", device: "a-phone" });
  laptop.receive(bobPhone, 3_000, "call-1", signalOf(send!.syncContent), 3_010);
  assertEquals(laptop.get("call-1")!.endReason, "declined-elsewhere");
  alice.receive(bobPhone, 3_000, "call-1", signalOf(send!.content), 3_010);
  assertEquals(alice.get("call-1")!.endReason, "declined");
});

Deno.test("calls: a device already in a call answers busy by itself", () => {
  const { phone, laptop } = ringing();
  phone.answer("call-1", "answer", 2_000);
  const carolBook = new CallBook(carol);
  const second = carolBook.startOutgoing({
    id: "call-2",
    peer: "bob",
    media: "video",
    sdp: OFFER,
    ringMs: 30_000,
  }, 4_000);
  const atPhone = phone.receive(carol, 4_000, "call-2", signalOf(second.send.content), 4_010);
  assertEquals(types(atPhone.events), ["call-ended"]);
  assertEquals(phone.get("call-2")!.endReason, "busy");
  const [reply] = atPhone.sends;
  assertEquals(signalOf(reply!.content), { op: "reject", reason: "busy", device: "c-phone" });
  carolBook.receive(bobPhone, 4_020, "call-2", signalOf(reply!.content), 4_030);
  assertEquals(carolBook.get("call-2")!.endReason, "busy");
  // The idle laptop, told by its sibling, stops ringing too.
  laptop.receive(carol, 4_000, "call-2", signalOf(second.send.content), 4_010);
  laptop.receive(bobPhone, 4_020, "call-2", signalOf(reply!.syncContent), 4_030);
  assertEquals(laptop.get("call-2")!.endReason, "busy");
});

Deno.test("calls: cancel, ring timeouts on both sides, and an offer heard too late", () => {
  const { alice, phone, laptop } = ringing();
  const cancel = alice.end("call-1", 5_000).send!;
  assertEquals([signalOf(cancel.content), cancel.ephemeral], [{ op: "cancel" }, false]);
  phone.receive(alicePhone, 5_000, "call-1", signalOf(cancel.content), 5_010);
  assertEquals(phone.get("call-1")!.endReason, "cancelled");

  // Nobody answers: the caller gives up at the deadline and says so; the callee misses it.
  assertEquals(laptop.nextDeadline(), 31_010);
  assertEquals(laptop.expire(31_000).events, []);
  assertEquals(laptop.expire(31_010).events.map((e) => e.call.endReason), ["missed"]);
  const caller = new CallBook(alicePhone);
  caller.startOutgoing({ id: "c", peer: "bob", media: "audio", sdp: OFFER, ringMs: 5_000 }, 0);
  const timedOut = caller.expire(5_000);
  assertEquals(timedOut.events.map((e) => e.call.endReason), ["no-answer"]);
  assertEquals(signalOf(timedOut.sends[0]!.content), { op: "cancel" });

  // A device online after the ring ended never rings: it learns of a missed call.
  const late = new CallBook(bobLaptop);
  const offer = { op: "offer" as const, media: "audio" as const, sdp: OFFER, ringMs: 5_000 };
  const heard = late.receive(alicePhone, 10_000, "old", offer, 16_000);
  assertEquals(heard.events.map((e) => [e.type, e.call.endReason]), [["call-ended", "missed"]]);
  assertEquals(heard.sends, []);
});

Deno.test("calls: ICE reaches only the device at the other end; early candidates wait", () => {
  const alice = new CallBook(alicePhone);
  const phone = new CallBook(bobPhone);
  const candidate = { candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ relay", sdpMid: "0" };
  // ICE that overtakes its offer is held, then handed over after the ring starts.
  assertEquals(phone.receive(alicePhone, 1, "call-9", { op: "ice", candidates: [candidate] }, 1), {
    events: [],
    sends: [],
  });
  const { send } = alice.startOutgoing({
    id: "call-9",
    peer: "bob",
    media: "audio",
    sdp: OFFER,
    ringMs: 30_000,
  }, 0);
  const ring = phone.receive(alicePhone, 2, "call-9", signalOf(send.content), 3);
  assertEquals(types(ring.events), ["call-incoming", "call-ice"]);
  phone.answer("call-9", "answer", 10);
  const ice = phone.ice("call-9", [candidate]);
  assertEquals([ice.ephemeral, signalOf(ice.content)], [true, {
    op: "ice",
    candidates: [candidate],
    device: "a-phone",
  }]);
  // From a stranger, or meant for another device: ignored.
  assertEquals(phone.receive(carol, 20, "call-9", signalOf(ice.content), 20).events, []);
  const other = { op: "ice" as const, candidates: [candidate], device: "b-laptop" };
  assertEquals(phone.receive(alicePhone, 20, "call-9", other, 20).events, []);
  const mine = { op: "ice" as const, candidates: [candidate], device: "b-phone" };
  assertEquals(types(phone.receive(alicePhone, 20, "call-9", mine, 20).events), ["call-ice"]);
  // Hang-up from the other end ends it; a second one changes nothing.
  const hangup = { op: "hangup" as const, device: "b-phone" };
  assertEquals(
    phone.receive(alicePhone, 30, "call-9", hangup, 30).events[0]!.call.endReason,
    "remote-hung-up",
  );
  assertEquals(phone.receive(alicePhone, 31, "call-9", hangup, 31).events, []);
  assertEquals(phone.live(), []);
});

Deno.test("calls: signals survive the E2EE content format and bad ones are refused", () => {
  const signals: Content[] = [
    {
      kind: "call",
      call: "c1",
      signal: { op: "offer", media: "video", sdp: OFFER, ringMs: 45_000 },
    },
    { kind: "call", call: "c1", signal: { op: "answer", sdp: "a", device: "d1" } },
    {
      kind: "call",
      call: "c1",
      signal: { op: "ice", candidates: [{ candidate: "x", sdpMid: "0", sdpMLineIndex: 0 }] },
    },
    { kind: "call", call: "c1", signal: { op: "reject", reason: "busy", device: "d1" } },
    { kind: "call", call: "c1", signal: { op: "cancel" } },
    { kind: "call", call: "c1", signal: { op: "hangup" } },
    { kind: "call", call: "c1", signal: { op: "handled", how: "answered" } },
  ];
  for (const content of signals) {
    assertEquals(
      decodeContent(encodeContent({ senderRegistrationId: 1, content })).content,
      content,
    );
  }
  const refused = (signal: unknown) =>
    captureError(() =>
      encodeContent({
        senderRegistrationId: 1,
        content: { kind: "call", call: "c1", signal } as Content,
      })
    ) as Error;
  assert(
    refused({ op: "offer", media: "audio", sdp: OFFER, ringMs: 1 }).message.includes("ringMs"),
  );
  assert(
    refused({ op: "offer", media: "audio", sdp: "x".repeat(40_000), ringMs: 10_000 }).message
      .includes("32768"),
  );
  assert(refused({ op: "ice", candidates: [] }).message.includes("1..20"));
  assert(refused({ op: "answer", sdp: "a", device: "a/b" }).message.includes("device"));
  assert(refused({ op: "dance" }).message.includes("unknown call signal"));
});

Deno.test("calls: one's own account cannot be called and ids are unique", () => {
  const book = new CallBook(alicePhone);
  const input = { id: "x", peer: "alice", media: "audio" as const, sdp: OFFER, ringMs: 5_000 };
  assert(captureError(() => book.startOutgoing(input, 0)) instanceof Error);
  book.startOutgoing({ ...input, peer: "bob" }, 0);
  assert(captureError(() => book.startOutgoing({ ...input, peer: "bob" }, 0)) instanceof Error);
});
