/** The PushStore conformance suite: every adapter registers it and passes it unchanged. */
import { assert, assertEquals, captureRejection } from "../../../tests/assert.ts";
import { StoreInputError } from "../errors.ts";
import type { PushRegistration } from "../push_ports.ts";
import { type StoreSuiteOptions, storeSuiteTest } from "./store_suite_kit.ts";

export type PushSuiteOptions = StoreSuiteOptions;

function registration(accountId: string, deviceId: string, token: string): PushRegistration {
  return {
    device: { accountId, deviceId },
    platform: "web-push",
    token,
    appId: "",
    registeredAtMs: 1_000,
    lastDeliveredAtMs: 0,
  };
}

export function registerPushSuite(options: PushSuiteOptions): void {
  const test = storeSuiteTest(options, "push");

  test("one registration per device; the last one wins; listed per account", async (store) => {
    const account = `acct-${crypto.randomUUID()}`;
    const phone = registration(account, "phone", '{"endpoint":"https://push.test/1"}');
    await store.push.put(phone);
    assertEquals(await store.push.get(phone.device), phone);
    const replaced = { ...phone, platform: "fcm" as const, token: "fcm-token", appId: "app" };
    await store.push.put(replaced);
    assertEquals(await store.push.get(phone.device), replaced);
    const laptop = registration(account, "laptop", "https://up.test/endpoint");
    await store.push.put(laptop);
    const listed = await store.push.list(account);
    assertEquals(listed.map((r) => r.device.deviceId).sort(), ["laptop", "phone"]);
    assertEquals(await store.push.list(`acct-${crypto.randomUUID()}`), []);
  });

  test("a dead token is removed only while the device still holds it", async (store) => {
    const account = `acct-${crypto.randomUUID()}`;
    const first = registration(account, "phone", "token-1");
    await store.push.put(first);
    // The device registered a new token before the provider reported the old one dead.
    await store.push.put({ ...first, token: "token-2", registeredAtMs: 2_000 });
    assertEquals(await store.push.remove(first.device, "token-1"), false);
    assertEquals((await store.push.get(first.device))?.token, "token-2");
    assertEquals(await store.push.remove(first.device, "token-2"), true);
    assertEquals(await store.push.get(first.device), undefined);
    assertEquals(await store.push.remove(first.device), false);
  });

  test("one claim wins per push, for the current token only; purge empties the account", async (store) => {
    const account = `acct-${crypto.randomUUID()}`;
    const r = registration(account, "phone", "token-1");
    await store.push.put(r);
    const racing = await Promise.all(
      [5_000, 5_001, 5_002].map((at) => store.push.claim(r.device, "token-1", 0, at)),
    );
    assertEquals(racing.filter(Boolean).length, 1, "exactly one dispatcher pushes");
    const won = (await store.push.get(r.device))!.lastDeliveredAtMs;
    assertEquals(5_000 + racing.indexOf(true), won);
    assertEquals(await store.push.claim(r.device, "another", won, 9_000), false);
    // Given back after a failed send: the next decision sees the old value again.
    assertEquals(await store.push.claim(r.device, "token-1", won, 0), true);
    assertEquals((await store.push.get(r.device))?.lastDeliveredAtMs, 0);
    // A claim on a removed registration does not bring it back.
    await store.push.remove(r.device);
    assertEquals(await store.push.claim(r.device, "token-1", 0, 9_000), false);
    assertEquals(await store.push.get(r.device), undefined);
    await store.push.put(r);
    await store.push.put(registration(account, "laptop", "token-3"));
    await store.push.purgeAccount(account);
    assertEquals(await store.push.list(account), []);
  });

  test("bad input is refused before anything is written", async (store) => {
    const account = `acct-${crypto.randomUUID()}`;
    const bad: PushRegistration[] = [
      registration(account, "phone", ""),
      registration(account, "phone", "x".repeat(4097)),
      { ...registration(account, "phone", "t"), platform: "sms" as never },
      registration("", "phone", "t"),
      { ...registration(account, "phone", "t"), appId: "a".repeat(256) },
    ];
    for (const r of bad) {
      assert(await captureRejection(store.push.put(r)) instanceof StoreInputError);
    }
    assertEquals(await store.push.list(account), []);
  });
}
