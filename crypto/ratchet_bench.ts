/**
 * Double Ratchet throughput through the Session API (what the client SDK calls).
 * Single-message benchmarks: messages/s = iterations/s. Burst benchmarks handle BURST messages
 * per iteration: messages/s = BURST x iterations/s.
 */
import { generateIdentityKeyPair } from "./keys.ts";
import { randomBytes } from "./primitives.ts";
import { acceptSession, initiateSession, type Session } from "./session.ts";
import { benchBundle } from "./bench_fixtures.ts";

const NOW = 1_700_000_000_000;
const KIB = randomBytes(1024);
const BURST = 16;

async function pair(): Promise<{ alice: Session; bob: Session }> {
  const bob = await benchBundle();
  const alice = await initiateSession(await generateIdentityKeyPair(), bob.bundle);
  const first = await alice.encrypt(KIB);
  const { session } = await acceptSession(bob.identity, first, bob.store, NOW);
  // One reply so Alice's messages are plain ratchet messages, not prekey messages.
  await alice.decrypt(await session.encrypt(KIB), NOW);
  return { alice, bob: session };
}

const oneWay = await pair();
Deno.bench("ratchet: encrypt 1 KiB (one-way)", { group: "one-way" }, async () => {
  await oneWay.alice.encrypt(KIB);
});

const receiving = await pair();
Deno.bench("ratchet: decrypt 1 KiB (one-way)", { group: "one-way" }, async (b) => {
  const message = await receiving.alice.encrypt(KIB);
  b.start();
  await receiving.bob.decrypt(message, NOW);
  b.end();
});

const pingPong = await pair();
let aliceTurn = true;
Deno.bench("ratchet: ping-pong 1 KiB (encrypt + decrypt, DH step each turn)", async () => {
  const [from, to] = aliceTurn ? [pingPong.alice, pingPong.bob] : [pingPong.bob, pingPong.alice];
  aliceTurn = !aliceTurn;
  await to.decrypt(await from.encrypt(KIB), NOW);
});

const burst = await pair();
Deno.bench(
  `ratchet: encrypt burst of ${BURST} x 1 KiB, one session`,
  { group: "burst" },
  async () => {
    await Promise.all(Array.from({ length: BURST }, () => burst.alice.encrypt(KIB)));
  },
);

const senders = await Promise.all(Array.from({ length: BURST }, () => pair()));
Deno.bench(
  `ratchet: decrypt ${BURST} x 1 KiB from ${BURST} sessions concurrently`,
  { group: "burst" },
  async (b) => {
    const messages = await Promise.all(senders.map((s) => s.alice.encrypt(KIB)));
    b.start();
    await Promise.all(senders.map((s, i) => s.bob.decrypt(messages[i]!, NOW)));
    b.end();
  },
);
