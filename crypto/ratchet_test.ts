import { assert, assertEquals } from "../tests/assert.ts";
import { expectCode, expectRejectionCode, ratchetPair } from "./crypto_test_kit.ts";
import {
  deserializeRatchetState,
  MAX_PLAINTEXT_BYTES,
  MAX_SKIP,
  ratchetDecrypt,
  ratchetEncrypt,
  serializeRatchetState,
  SKIP_BUDGET_PER_MINUTE,
} from "./ratchet.ts";
import {
  MAX_SKIPPED_KEYS,
  SKIPPED_KEY_MAX_AGE_MS,
  SKIPPED_KEY_MAX_RATCHET_STEPS,
} from "./skipped_keys.ts";
import { randomBytes, utf8 } from "./primitives.ts";

const NOW = 1_700_000_000_000;

const text = (s: string) => utf8(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("ratchet: messages flow both ways across many DH ratchet steps", async () => {
  const { alice, bob } = await ratchetPair();
  await expectRejectionCode(ratchetEncrypt(bob, text("too early")), "invalid-state");
  for (let turn = 0; turn < 20; turn++) {
    const [sender, receiver] = turn % 2 === 0 ? [alice, bob] : [bob, alice];
    for (let i = 0; i < 3; i++) {
      const message = await ratchetEncrypt(sender, text(`turn ${turn} message ${i}`));
      assertEquals(
        decode(await ratchetDecrypt(receiver, message, NOW)),
        `turn ${turn} message ${i}`,
      );
    }
  }
  assertEquals(alice.receivingSteps, 10);
  assertEquals(bob.receivingSteps, 10);
});

Deno.test("ratchet: out-of-order messages within and across chains", async () => {
  const { alice, bob } = await ratchetPair();
  const first = await ratchetEncrypt(alice, text("a0"));
  const a1 = await ratchetEncrypt(alice, text("a1"));
  const a2 = await ratchetEncrypt(alice, text("a2"));
  assertEquals(decode(await ratchetDecrypt(bob, a2, NOW)), "a2");
  const reply = await ratchetEncrypt(bob, text("b0"));
  assertEquals(decode(await ratchetDecrypt(alice, reply, NOW)), "b0");
  const a3 = await ratchetEncrypt(alice, text("a3")); // new chain; a0 and a1 are from the old one
  assertEquals(decode(await ratchetDecrypt(bob, a3, NOW)), "a3");
  assertEquals(decode(await ratchetDecrypt(bob, a1, NOW)), "a1");
  assertEquals(decode(await ratchetDecrypt(bob, first, NOW)), "a0");
  assertEquals(bob.skipped.size, 0);
});

Deno.test("ratchet: replays are rejected and leave the state unchanged", async () => {
  const { alice, bob } = await ratchetPair();
  const m0 = await ratchetEncrypt(alice, text("m0"));
  const m1 = await ratchetEncrypt(alice, text("m1"));
  await ratchetDecrypt(bob, m1, NOW); // m0's key is now skipped
  await ratchetDecrypt(bob, m0, NOW);
  const before = serializeRatchetState(bob);
  await expectRejectionCode(ratchetDecrypt(bob, m0, NOW), "duplicate-message");
  await expectRejectionCode(ratchetDecrypt(bob, m1, NOW), "duplicate-message");
  assertEquals(serializeRatchetState(bob), before);
  // A replay from an older chain looks like a new ratchet key: it fails authentication.
  await ratchetDecrypt(alice, await ratchetEncrypt(bob, text("b0")), NOW);
  await ratchetDecrypt(bob, await ratchetEncrypt(alice, text("m2")), NOW);
  const afterStep = serializeRatchetState(bob);
  await expectRejectionCode(ratchetDecrypt(bob, m1, NOW), "decryption-failed");
  assertEquals(serializeRatchetState(bob), afterStep);
});

Deno.test("ratchet: every flipped bit of a message is rejected without state change", async () => {
  const { alice, bob } = await ratchetPair();
  await ratchetDecrypt(bob, await ratchetEncrypt(alice, text("hello")), NOW);
  const message = await ratchetEncrypt(alice, text("a message of some length"));
  const before = serializeRatchetState(bob);
  for (let bit = 0; bit < message.length * 8; bit++) {
    const tampered = message.slice();
    tampered[bit >> 3]! ^= 1 << (bit & 7);
    let rejected = false;
    try {
      await ratchetDecrypt(bob, tampered, NOW);
    } catch {
      rejected = true;
    }
    assert(rejected, `bit ${bit}`);
    assertEquals(serializeRatchetState(bob), before);
  }
  assertEquals(decode(await ratchetDecrypt(bob, message, NOW)), "a message of some length");
  await expectRejectionCode(ratchetDecrypt(bob, message.subarray(0, 50), NOW), "malformed");
});

Deno.test("ratchet: messages of another session or another AD are rejected", async () => {
  const secret = randomBytes(32);
  const one = await ratchetPair(secret);
  const other = await ratchetPair();
  const sameSecretOtherAd = await ratchetPair(secret, randomBytes(66));
  const message = await ratchetEncrypt(other.alice, text("not for you"));
  await expectRejectionCode(ratchetDecrypt(one.bob, message, NOW), "decryption-failed");
  const wrongAd = await ratchetEncrypt(sameSecretOtherAd.alice, text("wrong AD"));
  await expectRejectionCode(ratchetDecrypt(one.bob, wrongAd, NOW), "decryption-failed");
});

Deno.test("ratchet: MAX_SKIP bounds one jump; the skipped-key store is capped", async () => {
  const { alice, bob } = await ratchetPair();
  const messages: Uint8Array[] = [];
  for (let i = 0; i <= MAX_SKIP + 1; i++) messages.push(await ratchetEncrypt(alice, text(`${i}`)));
  await expectRejectionCode(
    ratchetDecrypt(bob, messages[MAX_SKIP + 1]!, NOW),
    "too-many-skipped-messages",
  );
  assertEquals(decode(await ratchetDecrypt(bob, messages[MAX_SKIP]!, NOW)), `${MAX_SKIP}`);
  assertEquals(bob.skipped.size, MAX_SKIP);
  // Delivered now, so the next jumps skip nothing on this chain (one message derives at most
  // MAX_SKIP keys across both chains).
  await ratchetDecrypt(bob, messages[MAX_SKIP + 1]!, NOW);
  // Two more full jumps on new chains overflow the cap: the oldest keys go first.
  for (let round = 0; round < 2; round++) {
    await ratchetDecrypt(alice, await ratchetEncrypt(bob, text("reply")), NOW);
    for (let i = 0; i < MAX_SKIP; i++) await ratchetEncrypt(alice, text("skipped"));
    await ratchetDecrypt(bob, await ratchetEncrypt(alice, text("last")), NOW);
  }
  assertEquals(bob.skipped.size, MAX_SKIPPED_KEYS);
  await expectRejectionCode(ratchetDecrypt(bob, messages[0]!, NOW), "decryption-failed");
});

Deno.test("ratchet: skipped keys expire with time passed in, and with later DH steps", async () => {
  const { alice, bob } = await ratchetPair();
  const late = await ratchetEncrypt(alice, text("late"));
  await ratchetDecrypt(bob, await ratchetEncrypt(alice, text("on time")), NOW);
  assertEquals(bob.skipped.size, 1);
  const serialized = serializeRatchetState(bob);
  // Time: one millisecond too late.
  const expired = deserializeRatchetState(serialized);
  await expectRejectionCode(
    ratchetDecrypt(expired, late, NOW + SKIPPED_KEY_MAX_AGE_MS + 1),
    "duplicate-message",
  );
  const inTime = deserializeRatchetState(serialized);
  assertEquals(decode(await ratchetDecrypt(inTime, late, NOW + SKIPPED_KEY_MAX_AGE_MS)), "late");
  // Steps: after more than SKIPPED_KEY_MAX_RATCHET_STEPS receiving DH steps.
  const older = await ratchetEncrypt(alice, text("older"));
  await ratchetDecrypt(bob, await ratchetEncrypt(alice, text("newer")), NOW);
  for (let i = 0; i <= SKIPPED_KEY_MAX_RATCHET_STEPS; i++) {
    await ratchetDecrypt(alice, await ratchetEncrypt(bob, text("ping")), NOW);
    await ratchetDecrypt(bob, await ratchetEncrypt(alice, text("pong")), NOW);
  }
  assertEquals(bob.skipped.size, 0);
  await expectRejectionCode(ratchetDecrypt(bob, older, NOW), "decryption-failed");
});

Deno.test("ratchet: state serialization restores exactly", async () => {
  const { alice, bob } = await ratchetPair();
  for (const state of [alice, bob]) {
    const bytes = serializeRatchetState(state);
    assertEquals(serializeRatchetState(deserializeRatchetState(bytes)), bytes);
  }
  await ratchetEncrypt(alice, text("skipped"));
  await ratchetDecrypt(bob, await ratchetEncrypt(alice, text("x")), NOW);
  const bytes = serializeRatchetState(bob);
  const restored = deserializeRatchetState(bytes);
  assertEquals(serializeRatchetState(restored), bytes);
  assertEquals(
    decode(await ratchetDecrypt(alice, await ratchetEncrypt(restored, text("y")), NOW)),
    "y",
  );
  expectCode(() => deserializeRatchetState(bytes.subarray(0, bytes.length - 1)), "malformed");
  expectCode(() => deserializeRatchetState(Uint8Array.of(...bytes, 0)), "malformed");
  const future = bytes.slice();
  future[0] = 2;
  expectCode(() => deserializeRatchetState(future), "unsupported-version");
});

Deno.test("ratchet: plaintext size and `now` are validated", async () => {
  const { alice, bob } = await ratchetPair();
  await expectRejectionCode(
    ratchetEncrypt(alice, new Uint8Array(MAX_PLAINTEXT_BYTES + 1)),
    "invalid-argument",
  );
  const big = await ratchetEncrypt(alice, new Uint8Array(MAX_PLAINTEXT_BYTES));
  assertEquals((await ratchetDecrypt(bob, big, NOW)).length, MAX_PLAINTEXT_BYTES);
  const message = await ratchetEncrypt(alice, text("x"));
  await expectRejectionCode(ratchetDecrypt(bob, message, -1), "invalid-argument");
  await expectRejectionCode(ratchetDecrypt(bob, message, 0.5), "invalid-argument");
});

Deno.test("ratchet: an encrypt during a decrypt's DH step is kept (PN counts it)", async () => {
  const { alice, bob } = await ratchetPair();
  await ratchetDecrypt(bob, await ratchetEncrypt(alice, text("a0")), NOW);
  const fromBob = await ratchetEncrypt(bob, text("b0"));
  const decrypting = ratchetDecrypt(alice, fromBob, NOW); // awaits its DH computations
  const duringStep = ratchetEncrypt(alice, text("during")); // old chain, still valid
  assertEquals(decode(await decrypting), "b0");
  const during = await duringStep;
  const after = await ratchetEncrypt(alice, text("after")); // new chain, PN = 2
  assertEquals(decode(await ratchetDecrypt(bob, after, NOW)), "after");
  assertEquals(decode(await ratchetDecrypt(bob, during, NOW)), "during");
});

// Audit finding 11: before, one forged message with a new ratchet key could cost up to
// 2 × MAX_SKIP HMACs, and a flood of them that much each, without limit.
Deno.test("ratchet: one message derives at most MAX_SKIP keys across the old and the new chain", async () => {
  const { alice, bob } = await ratchetPair();
  await ratchetDecrypt(bob, await ratchetEncrypt(alice, text("first")), NOW);
  for (let i = 0; i < 600; i++) await ratchetEncrypt(alice, text("never delivered"));
  await ratchetDecrypt(alice, await ratchetEncrypt(bob, text("reply")), NOW);
  for (let i = 0; i < 600; i++) await ratchetEncrypt(alice, text("never delivered either"));
  const late = await ratchetEncrypt(alice, text("late")); // 600 old-chain + 600 new-chain skips
  const before = serializeRatchetState(bob);
  await expectRejectionCode(ratchetDecrypt(bob, late, NOW), "too-many-skipped-messages");
  assertEquals(serializeRatchetState(bob), before);
});

Deno.test("ratchet: forged messages spend a per-minute budget; honest skips are given back", async () => {
  const { alice, bob } = await ratchetPair();
  const messages: Uint8Array[] = [];
  for (let i = 0; i < MAX_SKIP; i++) messages.push(await ratchetEncrypt(alice, text(`${i}`)));
  const forged = messages[MAX_SKIP - 1]!.slice();
  forged[forged.length - 1]! ^= 1; // the header is genuine, the ciphertext is not
  for (let spent = 0; spent + MAX_SKIP - 1 <= SKIP_BUDGET_PER_MINUTE; spent += MAX_SKIP - 1) {
    await expectRejectionCode(ratchetDecrypt(bob, forged, NOW), "decryption-failed");
  }
  const before = serializeRatchetState(bob);
  await expectRejectionCode(ratchetDecrypt(bob, forged, NOW + 1_000), "too-many-skipped-messages");
  assertEquals(serializeRatchetState(bob), before);
  // Messages that need no skipping still open; a minute later the budget is back.
  assertEquals(decode(await ratchetDecrypt(bob, messages[0]!, NOW + 2_000)), "0");
  await expectRejectionCode(ratchetDecrypt(bob, forged, NOW + 61_000), "decryption-failed");
  // Honest out-of-order delivery is never charged: far more than the budget in one minute.
  const pair = await ratchetPair();
  for (let round = 0; round < 5; round++) {
    const batch: Uint8Array[] = [];
    for (let i = 0; i < 900; i++) batch.push(await ratchetEncrypt(pair.alice, text(`${i}`)));
    assertEquals(decode(await ratchetDecrypt(pair.bob, batch[899]!, NOW)), "899");
  }
});
