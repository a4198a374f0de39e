/**
 * Property tests of the Double Ratchet with fast-check. Runs are kept small (tens of messages,
 * tens of runs) so the suite stays within seconds.
 */
import fc from "fast-check";
import { assert, assertEquals } from "../tests/assert.ts";
import { CryptoError } from "./errors.ts";
import {
  canEncrypt,
  deserializeRatchetState,
  ratchetDecrypt,
  ratchetEncrypt,
  type RatchetState,
  serializeRatchetState,
} from "./ratchet.ts";
import { concatBytes, toHex } from "./primitives.ts";
import { ratchetPair } from "./crypto_test_kit.ts";

const NOW = 1_700_000_000_000;

type Party = "alice" | "bob";
type Action =
  | { kind: "send"; from: Party; count: number }
  | { kind: "deliver"; to: Party; pick: number }
  | { kind: "drop"; to: Party; pick: number };

const party = fc.constantFrom<Party>("alice", "bob");
const action: fc.Arbitrary<Action> = fc.oneof(
  fc.record({
    kind: fc.constant("send" as const),
    from: party,
    count: fc.integer({ min: 1, max: 4 }),
  }),
  fc.record({ kind: fc.constant("deliver" as const), to: party, pick: fc.nat() }),
  fc.record({ kind: fc.constant("drop" as const), to: party, pick: fc.nat() }),
);

interface InFlight {
  message: Uint8Array;
  plaintext: Uint8Array;
}

/** Serializes, restores and checks byte equality; continues with the restored state. */
function roundTrip(state: RatchetState): RatchetState {
  const bytes = serializeRatchetState(state);
  const restored = deserializeRatchetState(bytes);
  assertEquals(serializeRatchetState(restored), bytes);
  return restored;
}

Deno.test("property: any interleaving, loss and reordering decrypts; state round-trips", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(action, { minLength: 1, maxLength: 30 }), async (actions) => {
      const pair = await ratchetPair();
      const states: Record<Party, RatchetState> = { alice: pair.alice, bob: pair.bob };
      const inbox: Record<Party, InFlight[]> = { alice: [], bob: [] };
      let counter = 0;
      const deliver = async (to: Party, pick: number) => {
        const [item] = inbox[to].splice(pick % inbox[to].length, 1);
        const plaintext = await ratchetDecrypt(states[to], item!.message, NOW);
        assertEquals(toHex(plaintext), toHex(item!.plaintext));
        states[to] = roundTrip(states[to]);
      };
      for (const step of actions) {
        if (step.kind === "send") {
          const to: Party = step.from === "alice" ? "bob" : "alice";
          if (!canEncrypt(states[step.from])) continue; // Bob speaks after Alice's first message
          for (let i = 0; i < step.count; i++) {
            const plaintext = new TextEncoder().encode(`${step.from} ${counter++}`);
            const message = await ratchetEncrypt(states[step.from], plaintext);
            inbox[to].push({ message, plaintext });
          }
          states[step.from] = roundTrip(states[step.from]);
        } else if (inbox[step.to].length === 0) {
          continue;
        } else if (step.kind === "deliver") {
          await deliver(step.to, step.pick);
        } else {
          inbox[step.to].splice(step.pick % inbox[step.to].length, 1); // lost in transit
        }
      }
      // Whatever is still in flight arrives late, newest first.
      for (const to of ["bob", "alice"] as const) {
        while (inbox[to].length > 0) await deliver(to, inbox[to].length - 1);
      }
    }),
    { numRuns: 40 },
  );
});

async function rejects(promise: Promise<unknown>): Promise<boolean> {
  try {
    await promise;
    return false;
  } catch (error) {
    return error instanceof CryptoError;
  }
}

Deno.test("property: any bit flip, replay or cross-session message is rejected", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 5 }),
      fc.integer({ min: 0, max: 40 }),
      fc.nat(),
      async (turns, length, bitSeed) => {
        const { alice, bob } = await ratchetPair();
        const stranger = await ratchetPair();
        for (let t = 0; t < turns; t++) {
          await ratchetDecrypt(bob, await ratchetEncrypt(alice, new Uint8Array([t])), NOW);
          await ratchetDecrypt(alice, await ratchetEncrypt(bob, new Uint8Array([t])), NOW);
        }
        const plaintext = new Uint8Array(length).fill(7);
        const message = await ratchetEncrypt(alice, plaintext);
        const before = serializeRatchetState(bob);

        const bit = bitSeed % (message.length * 8);
        const flipped = message.slice();
        flipped[bit >> 3]! ^= 1 << (bit & 7);
        assert(await rejects(ratchetDecrypt(bob, flipped, NOW)), `bit ${bit}`);
        assert(await rejects(ratchetDecrypt(bob, concatBytes(message, Uint8Array.of(0)), NOW)));
        const foreign = await ratchetEncrypt(stranger.alice, plaintext);
        assert(await rejects(ratchetDecrypt(bob, foreign, NOW)));
        assertEquals(serializeRatchetState(bob), before);

        assertEquals(await ratchetDecrypt(bob, message, NOW), plaintext);
        assert(await rejects(ratchetDecrypt(bob, message, NOW)), "replay");
      },
    ),
    { numRuns: 40 },
  );
});
