/** PQXDH session setup, both sides: bundle verification, key agreement, first message. */
import { generateIdentityKeyPair } from "./keys.ts";
import { utf8 } from "./primitives.ts";
import { acceptSession, initiateSession } from "./session.ts";
import { benchBundle } from "./bench_fixtures.ts";

const NOW = 1_700_000_000_000;
const bob = await benchBundle();
const alice = await generateIdentityKeyPair();
const hello = utf8("hello");

Deno.bench("session: PQXDH setup, both sides (initiate + first message + accept)", async () => {
  const session = await initiateSession(alice, bob.bundle);
  await acceptSession(bob.identity, await session.encrypt(hello), bob.store, NOW);
});

Deno.bench("session: PQXDH initiator only (verify bundle, agree, ratchet init)", async () => {
  await initiateSession(alice, bob.bundle);
});
