/**
 * Calls end to end: the SDK's E2EE call signaling through a real server, and a real WebRTC
 * connection (werift, pure TypeScript) between two SDK clients relayed by a real coturn that
 * checks the TURN credentials GetTurnCredentials handed out (ICE policy "relay": no direct
 * path). Data flows over a data channel; coturn's log shows the relay allocations.
 *
 * werift is a test dependency only: the SDK carries signaling and leaves media to the app.
 */

import { RTCPeerConnection } from "werift";
import { assert, assertEquals } from "../assert.ts";
import { type Coturn, startCoturn } from "../support/coturn.ts";
import { NO_SANITIZERS, waitUntil } from "../support/wait.ts";
import type { CallInfo, ClientEvent, IceServer } from "../../client/mod.ts";
import { registered, startWorld, type TestClient, type World } from "./e2e_test_kit.ts";

const SECRET = `calls-${crypto.randomUUID()}`;

let running: Promise<{ world: World; coturn: Coturn }> | undefined;
const setup = () =>
  running ??= (async () => {
    const coturn = await startCoturn(SECRET);
    const world = await startWorld("embedded", {
      TURN_SHARED_SECRET: SECRET,
      TURN_URLS: `turn:127.0.0.1:${coturn.port}?transport=udp`,
    });
    return { world, coturn };
  })();

const test = (name: string, fn: (s: { world: World; coturn: Coturn }) => Promise<void>) =>
  Deno.test({ name: `e2e calls: ${name}`, ...NO_SANITIZERS, fn: async () => fn(await setup()) });

const idOf = (handle: TestClient) => handle.client.account!.accountId;

function eventsOf<T extends ClientEvent["type"]>(handle: TestClient, type: T, callId: string) {
  return handle.events.filter((e): e is Extract<ClientEvent, { type: T }> =>
    e.type === type && "call" in e && (e.call as CallInfo).id === callId
  );
}

function endReason(handle: TestClient, callId: string) {
  return eventsOf(handle, "call-ended", callId).at(-1)?.call.endReason;
}

/** A peer connection that may only use TURN relays (no host or reflexive path). */
function relayOnly(iceServers: IceServer[]) {
  return new RTCPeerConnection({
    iceServers: iceServers.map((s) => ({
      urls: s.urls[0]!,
      username: s.username,
      credential: s.credential,
    })),
    iceTransportPolicy: "relay",
  });
}

/** Waits for ICE gathering, so the SDP carries the relay candidates (no trickle needed). */
function gathered(pc: RTCPeerConnection): Promise<void> {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.iceGatheringStateChange.subscribe((state) => state === "complete" && resolve());
  });
}

test("two clients connect through the TURN relay and exchange data over a data channel", async ({ world, coturn }) => {
  const alice = await registered(world, "alice");
  const bob = await registered(world, "bob");
  const turn = await alice.client.turnServers();
  assertEquals(turn.iceServers[0]!.urls, [`turn:127.0.0.1:${coturn.port}?transport=udp`]);
  assert(!turn.iceServers[0]!.username.includes(idOf(alice)), "no account id in the username");

  const callerPc = relayOnly(turn.iceServers);
  const channel = callerPc.createDataChannel("chat");
  await callerPc.setLocalDescription(await callerPc.createOffer());
  await gathered(callerPc);
  const offerSdp = callerPc.localDescription!.sdp;
  assert(offerSdp.includes("typ relay"), "the offer carries a relay candidate");
  assert(!/typ (host|srflx)/.test(offerSdp), "and nothing but relays");

  const call = await alice.client.startCall(idOf(bob), { sdp: offerSdp, media: "audio" });
  await waitUntil(() => eventsOf(bob, "call-incoming", call.id).length === 1, "bob's device rings");
  const incoming = eventsOf(bob, "call-incoming", call.id)[0]!;
  assertEquals([incoming.call.peer, incoming.sdp], [idOf(alice), offerSdp]);

  const calleePc = relayOnly((await bob.client.turnServers()).iceServers);
  const received = new Promise<string>((resolve) => {
    calleePc.onDataChannel.subscribe((ch) => {
      ch.onMessage.subscribe((message) => {
        resolve(String(message));
        ch.send(`pong: ${message}`);
      });
    });
  });
  await calleePc.setRemoteDescription({ type: "offer", sdp: incoming.sdp });
  await calleePc.setLocalDescription(await calleePc.createAnswer());
  await gathered(calleePc);
  await bob.client.answerCall(call.id, calleePc.localDescription!.sdp);

  await waitUntil(() => eventsOf(alice, "call-answered", call.id).length === 1, "alice's answer");
  const answered = eventsOf(alice, "call-answered", call.id)[0]!;
  assertEquals(answered.call.state, "active");
  await callerPc.setRemoteDescription({ type: "answer", sdp: answered.sdp });

  const echoed = new Promise<string>((resolve) => {
    channel.onMessage.subscribe((message) => resolve(String(message)));
  });
  channel.stateChanged.subscribe((state) => state === "open" && channel.send("hello via relay"));
  assertEquals(await received, "hello via relay");
  assertEquals(await echoed, "pong: hello via relay");

  // The selected pair is relay to relay, and coturn allocated relays for both credentials.
  const pair = callerPc.iceTransports[0]?.connection.nominated;
  assertEquals([pair?.localCandidate.type, pair?.remoteCandidate.type], ["relay", "relay"]);
  const allocations = coturn.log().match(/incoming packet ALLOCATE processed, success/g) ?? [];
  assert(allocations.length >= 2, `coturn allocated ${allocations.length} relays`);

  await alice.client.endCall(call.id);
  await waitUntil(() => endReason(bob, call.id) === "remote-hung-up", "bob hears the hang-up");
  assertEquals(alice.client.calls(), []);
  assertEquals(bob.client.calls(), []);
  await callerPc.close();
  await calleePc.close();
});

test("coturn gives a peer connection no relay for a wrong or an expired credential", async ({ world, coturn }) => {
  const gina = await registered(world, "gina");
  const good = (await gina.client.turnServers()).iceServers[0]!;
  const [, opaque] = good.username.split(":");
  const expiredName = `${Math.floor(Date.now() / 1000) - 60}:${opaque}`;
  const bad = [
    { ...good, credential: "d3JvbmcgcGFzc3dvcmQ=" },
    // Signed with the right secret (coturn's scheme), but its time is up.
    { ...good, username: expiredName, credential: await hmacSha1(SECRET, expiredName) },
  ];
  for (const server of bad) {
    const pc = relayOnly([server]);
    pc.createDataChannel("x");
    // werift retries a refused allocation for about 13 s before it gives up gathering: the
    // refusal in coturn's log is the answer, so do not wait for that.
    const setting = pc.setLocalDescription(await pc.createOffer()).catch(() => {});
    const refusal = new RegExp(`user <${server.username}>: .*error 401`);
    await waitUntil(() => refusal.test(coturn.log()), "coturn refuses it: 401 Unauthorized");
    const relays = pc.iceTransports.flatMap((t) => t.connection.localCandidates)
      .filter((c) => c.type === "relay");
    assertEquals(relays, [], "no relay candidate");
    await pc.close();
    void setting;
  }
});

async function hmacSha1(secret: string, text: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-1" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(text)));
  return btoa(String.fromCharCode(...mac));
}

test("a call rings every device; answering on one stops the other", async ({ world }) => {
  const carol = await registered(world, "carol");
  const dave = await registered(world, "dave");
  const phone = await world.client("dave-phone");
  const linking = await phone.client.startLinking();
  await dave.client.approveLink(linking.code);
  await linking.completed;
  phone.client.connect();
  await waitUntil(
    () => dave.events.some((e) => e.type === "own-device"),
    "dave's laptop knows the phone",
  );
  const call = await carol.client.startCall(idOf(dave), { sdp: "v=0 offer" });
  for (const device of [dave, phone]) {
    await waitUntil(() => eventsOf(device, "call-incoming", call.id).length === 1, "it rings");
  }
  await phone.client.answerCall(call.id, "v=0 answer");
  await waitUntil(
    () => endReason(dave, call.id) === "answered-elsewhere",
    "the laptop stops: answered elsewhere",
  );
  await waitUntil(() => eventsOf(carol, "call-answered", call.id).length === 1, "carol's answer");
  assertEquals(
    eventsOf(carol, "call-answered", call.id)[0]!.call.peerDevice,
    phone.client.account!.deviceId,
  );

  // Trickled ICE goes to the phone only (the laptop is out of the call).
  const candidate = { candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ relay", sdpMid: "0" };
  await carol.client.sendIceCandidates(call.id, [candidate]);
  await waitUntil(() => eventsOf(phone, "call-ice", call.id).length === 1, "the phone's ICE");
  assertEquals(eventsOf(phone, "call-ice", call.id)[0]!.candidates, [candidate]);
  assertEquals(eventsOf(dave, "call-ice", call.id), []);

  // Declined and busy reach the caller; a cancelled call stops the ring.
  const second = await dave.client.startCall(idOf(carol), { sdp: "v=0 offer" });
  await waitUntil(() => endReason(dave, second.id) === "busy", "carol is in a call: busy");
  await phone.client.endCall(call.id);
  await waitUntil(() => endReason(carol, call.id) === "remote-hung-up", "carol hears it");
  const third = await carol.client.startCall(idOf(dave), { sdp: "v=0 offer" });
  await waitUntil(() => eventsOf(dave, "call-incoming", third.id).length === 1, "rings again");
  await dave.client.endCall(third.id);
  await waitUntil(() => endReason(carol, third.id) === "declined", "carol: declined");
  await waitUntil(() => endReason(phone, third.id) === "declined-elsewhere", "phone stops");
  const fourth = await carol.client.startCall(idOf(dave), { sdp: "v=0 offer" });
  await waitUntil(() => eventsOf(phone, "call-incoming", fourth.id).length === 1, "rings");
  await carol.client.endCall(fourth.id);
  await waitUntil(() => endReason(phone, fourth.id) === "cancelled", "the ring stops");
});

test("a device that comes online after the ring never rings; the offer is gone", async ({ world }) => {
  const erin = await registered(world, "erin");
  const frank = await registered(world, "frank");
  await frank.client.close();
  const call = await erin.client.startCall(idOf(frank), { sdp: "v=0 offer", ringMs: 5_000 });
  await waitUntil(() => endReason(erin, call.id) === "no-answer", "erin gives up", 15_000);
  // Erin's ring started on her clock, Frank's counts from the server's time: a little later.
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  const later = await world.reopen(frank);
  later.client.connect();
  await waitUntil(() => later.client.online, "frank online again");
  await erin.client.sendText(idOf(frank), "sorry I missed you");
  await waitUntil(
    () => later.events.some((e) => e.type === "message"),
    "frank reads what came after",
  );
  // The server dropped the offer with its ring (ttl_seconds): had it come, the client would
  // have reported a missed call.
  assertEquals(eventsOf(later, "call-incoming", call.id), []);
  assertEquals(later.events.filter((e) => e.type === "call-ended"), []);
});

test("stop", async ({ world, coturn }) => {
  await world.stop();
  await coturn.stop();
});
