import { assert, assertEquals } from "../../tests/assert.ts";
import { checkDeviceSets, MISMATCH_LIST_MAX } from "./device_set.ts";

const current = [{ deviceId: "b1", registrationId: 1 }, { deviceId: "b2", registrationId: 2 }];
const bob = (envelopes: { deviceId: string; registrationId: number }[]) => ({
  accountId: "bob",
  current,
  envelopes,
});

Deno.test("device set: exactly the current devices with their registration ids pass", () => {
  assertEquals(checkDeviceSets([bob(current)]), { ok: true });
  assertEquals(checkDeviceSets([bob([...current].reverse())]), { ok: true });
});

Deno.test("device set: missing and extra devices are MISMATCHED_DEVICES, stale listed too", () => {
  const verdict = checkDeviceSets([
    bob([{ deviceId: "b1", registrationId: 9 }, { deviceId: "gone", registrationId: 3 }]),
  ]);
  assert(!verdict.ok);
  assertEquals(verdict.reason, "MISMATCHED_DEVICES");
  assertEquals(verdict.detail, {
    missingDevices: [{ accountId: "bob", deviceId: "b2" }],
    extraDevices: [{ accountId: "bob", deviceId: "gone" }],
    staleDevices: [{ accountId: "bob", deviceId: "b1" }],
  });
  assert(verdict.summary.includes("1 missing, 1 extra, 1 stale"), verdict.summary);
  assert(!verdict.summary.includes("b2"), "no identifiers in the status text");
});

Deno.test("device set: only registration ids differing is STALE_DEVICES", () => {
  const verdict = checkDeviceSets([
    bob([{ deviceId: "b1", registrationId: 1 }, { deviceId: "b2", registrationId: 5 }]),
  ]);
  assert(!verdict.ok);
  assertEquals(verdict.reason, "STALE_DEVICES");
  assertEquals(verdict.detail.staleDevices, [{ accountId: "bob", deviceId: "b2" }]);
  assertEquals(verdict.detail.missingDevices, []);
});

Deno.test("device set: problems of both accounts are listed together", () => {
  const verdict = checkDeviceSets([
    bob(current),
    { accountId: "alice", current: [{ deviceId: "a2", registrationId: 4 }], envelopes: [] },
  ]);
  assert(!verdict.ok);
  assertEquals(verdict.detail.missingDevices, [{ accountId: "alice", deviceId: "a2" }]);
});

Deno.test("device set: detail lists are bounded", () => {
  const many = Array.from({ length: 30 }, (_, i) => ({ deviceId: `x${i}`, registrationId: 1 }));
  const verdict = checkDeviceSets([{ accountId: "bob", current: many, envelopes: [] }]);
  assert(!verdict.ok);
  assertEquals(verdict.detail.missingDevices.length, MISMATCH_LIST_MAX);
  assert(verdict.summary.includes("30 missing"));
});
