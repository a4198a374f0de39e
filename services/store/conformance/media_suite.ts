/** The MediaStore conformance suite: every adapter registers it and passes it unchanged. */
import { assert, assertEquals, captureRejection } from "../../../tests/assert.ts";
import { StoreInputError } from "../errors.ts";
import type { MediaRecord } from "../media_ports.ts";
import { type StoreSuiteOptions, storeSuiteTest } from "./store_suite_kit.ts";

export type MediaSuiteOptions = StoreSuiteOptions;

function record(accountId: string, size: number, expiresAtMs = Date.now() + 3600_000): MediaRecord {
  return {
    mediaId: crypto.randomUUID().replaceAll("-", ""),
    owner: { accountId, deviceId: "d1" },
    size,
    chunkSize: 65_536,
    sha256: crypto.getRandomValues(new Uint8Array(32)),
    granteeAccounts: ["friend-1", "friend-2"],
    granteeGroup: new Uint8Array([1, 2, 3]),
    uploadId: "upload-1",
    state: "uploading",
    createdAtMs: Date.now(),
    expiresAtMs,
  };
}

export function registerMediaSuite(options: MediaSuiteOptions): void {
  const test = storeSuiteTest(options, "media");

  test("a record is kept whole, completes once and is deleted with its bytes", async (store) => {
    const account = `acct-${crypto.randomUUID()}`;
    const r = record(account, 1000);
    assertEquals(await store.media.create(r, 10_000), "created");
    assertEquals(await store.media.get(r.mediaId), r);
    assertEquals(await store.media.usage(account), 1000);
    const retention = Date.now() + 30 * 86_400_000;
    assertEquals(await store.media.complete(r.mediaId, retention), true);
    assertEquals(await store.media.complete(r.mediaId, retention), false);
    const done = await store.media.get(r.mediaId);
    assertEquals([done!.state, done!.expiresAtMs], ["complete", retention]);
    assertEquals((await store.media.delete(r.mediaId))?.mediaId, r.mediaId);
    assertEquals(await store.media.delete(r.mediaId), undefined);
    assertEquals(await store.media.get(r.mediaId), undefined);
    assertEquals(await store.media.usage(account), 0);
  });

  test("the quota refuses an upload that would pass it, and writes nothing", async (store) => {
    const account = `acct-${crypto.randomUUID()}`;
    assertEquals(await store.media.create(record(account, 600), 1000), "created");
    const over = record(account, 500);
    assertEquals(await store.media.create(over, 1000), "quota");
    assertEquals(await store.media.get(over.mediaId), undefined);
    assertEquals(await store.media.usage(account), 600);
    assertEquals(await store.media.create(record(account, 400), 1000), "created");
  });

  test("expired records are listed for the sweeper, others are not", async (store) => {
    const account = `acct-${crypto.randomUUID()}`;
    const now = Date.now();
    const old = record(account, 10, now - 1000);
    const fresh = record(account, 10, now + 3600_000);
    await store.media.create(old, 1e9);
    await store.media.create(fresh, 1e9);
    const due = (await store.media.expired(now, 1000)).map((r) => r.mediaId);
    assert(due.includes(old.mediaId), "the expired one");
    assert(!due.includes(fresh.mediaId), "not the fresh one");
    // Completing moves the expiry: the record is due at its new time only.
    await store.media.complete(old.mediaId, now + 3600_000);
    assert(!(await store.media.expired(now, 1000)).some((r) => r.mediaId === old.mediaId));
  });

  test("bad ids are refused", async (store) => {
    const error = await captureRejection(store.media.get("../x"));
    assert(error instanceof StoreInputError, String(error));
  });
}
