/**
 * Files end to end through the SDK: encrypted while read, uploaded with progress, announced in
 * an E2EE message, downloaded, checked and decrypted by the receiver into place - on the
 * embedded store with the filesystem, and on Cassandra + JetStream + versitygw (S3) with two
 * instances of every service. The blob store holds ciphertext only.
 */

import { join } from "node:path";
import { createHash } from "node:crypto";
import { assert, assertEquals } from "../assert.ts";
import type { Backend } from "../support/platform.ts";
import { registered, startWorld, type World } from "./e2e_test_kit.ts";
import { NO_SANITIZERS, waitUntil } from "../support/wait.ts";
import { openBlobStore } from "../../services/runtime/open_blobs.ts";
import { memoryLogger } from "../../services/platform/log.ts";

/** SHA-256 of a file, read as a stream. */
async function fileDigest(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  for await (const part of file.readable) hash.update(part);
  return hash.digest("hex");
}

function filesE2e(backend: Backend) {
  let running: Promise<World> | undefined;
  // Blobs up to 300 MiB here: the round trip below is 200 MiB (the default cap is 100 MiB).
  const world = () =>
    running ??= startWorld(backend, { MEDIA_MAX_BLOB_BYTES: String(300 * 1024 * 1024) });
  const test = (name: string, fn: (w: World) => Promise<void>) =>
    Deno.test({
      name: `e2e files (${backend}): ${name}`,
      ...NO_SANITIZERS,
      fn: async () => fn(await world()),
    });

  test("a file goes to a contact encrypted, and arrives whole and checked", async (w) => {
    const [alice, bob] = [await registered(w, "alice"), await registered(w, "bob")];
    const marker = `PLAINTEXT MARKER ${crypto.randomUUID()}`;
    const body = new Uint8Array(3 * 1024 * 1024 + 4321);
    for (let i = 0; i < body.length; i += 65_536) {
      crypto.getRandomValues(body.subarray(i, Math.min(body.length, i + 65_536)));
    }
    body.set(new TextEncoder().encode(marker), 1_000_000);
    const source = join(w.dir, "holiday.jpg");
    await Deno.writeFile(source, body);
    const progress: number[] = [];
    const sent = await alice.client.sendFile(bob.client.account!.username, source, {
      onProgress: (p) => progress.push(p.sentBytes),
    });
    assertEquals(sent.status, "sent");
    assertEquals(sent.file?.name, "holiday.jpg");
    assert(progress.length >= 3 && progress.at(-1) === sent.file!.size, `progress ${progress}`);
    const alicesId = alice.client.account!.accountId;
    await waitUntil(
      () => bob.client.messages(alicesId).some((m) => m.file),
      "bob gets the message",
    );
    const received = bob.client.messages(alicesId).find((m) => m.file)!;
    assertEquals([received.body, received.file!.plainSize], ["holiday.jpg", body.length]);
    const target = join(w.dir, "saved.jpg");
    assertEquals(await bob.client.saveFile(alicesId, received.id, target), body.length);
    assertEquals(await Deno.readFile(target), body);

    // The server's blob holds ciphertext only: the marker is nowhere in it.
    const env = w.instances[0]!.env;
    const blobs = await openBlobStore(
      backend === "cluster"
        ? {
          backend: "s3",
          endpoint: env.S3_ENDPOINT!,
          region: env.S3_REGION!,
          bucket: env.S3_BUCKET!,
          accessKeyId: env.S3_ACCESS_KEY_ID!,
          secretAccessKey: env.S3_SECRET_ACCESS_KEY!,
        }
        : { backend: "fs", dir: join(env.SQLITE_PATH!, "..", "media") },
      memoryLogger(),
    );
    const stored = new Uint8Array(
      await new Response(await blobs.read(received.file!.mediaId, 0)).arrayBuffer(),
    );
    assertEquals(stored.length, received.file!.size);
    const text = new TextDecoder("latin1").decode(stored);
    assert(!text.includes(marker), "the marker is not in the stored blob");
    assert(!text.includes("holiday"), "nor the file name");
  });

  test("a file to a group reaches its members, and stops with membership", async (w) => {
    const [alice, bob, carol] = [
      await registered(w, "alice"),
      await registered(w, "bob"),
      await registered(w, "carol"),
    ];
    const ids = [bob, carol].map((h) => h.client.account!.accountId);
    const group = await alice.client.createGroup("photos", ids);
    const body = new Uint8Array(200_000).map((_, i) => (i * 7919) % 251);
    const source = join(w.dir, "summit.jpg");
    await Deno.writeFile(source, body);
    const sent = await alice.client.sendGroupFile(group.id, source, { caption: "the summit" });
    assertEquals([sent.body, sent.file?.name, sent.file?.plainSize], [
      "the summit",
      "summit.jpg",
      body.length,
    ]);
    const fileIn = (h: typeof bob) =>
      h.client.groups().some((g) => g.id === group.id)
        ? h.client.groupMessages(group.id).find((m) => m.file)
        : undefined;
    for (const member of [bob, carol]) {
      await waitUntil(() => !!fileIn(member), `${member.name} gets the file message`);
      const message = fileIn(member)!;
      const target = join(w.dir, `${member.name}-summit.jpg`);
      assertEquals(await member.client.saveGroupFile(group.id, message.id, target), body.length);
      assertEquals(await Deno.readFile(target), body);
    }
    // Removed from the group: the grant follows membership at download time.
    const message = fileIn(carol)!;
    await alice.client.removeFromGroup(group.id, [ids[1]!]);
    await waitUntil(
      () => carol.events.some((e) => e.type === "group-members" && e.removedSelf),
      "carol learns she was removed",
    );
    // The media service answers NOT_FOUND, as to anyone who is no member (it never says the
    // file exists), and nothing appears at the destination.
    const target = join(w.dir, "carol-again.jpg");
    const error = await carol.client.saveGroupFile(group.id, message.id, target).then(
      () => undefined,
      (e: Error) => e,
    );
    assert(error, "carol cannot download it any more");
    assert(/NOT_FOUND|not found/i.test(String(error.message)), error.message);
    assertEquals(await Deno.stat(target).catch(() => undefined), undefined);
  });

  test("a file that does not open is refused and nothing appears at the destination", async (w) => {
    const [alice, bob] = [await registered(w, "alice"), await registered(w, "bob")];
    const source = join(w.dir, "note.txt");
    await Deno.writeFile(source, new TextEncoder().encode("a short note ".repeat(1000)));
    await alice.client.sendFile(bob.client.account!.username, source);
    const alicesId = alice.client.account!.accountId;
    await waitUntil(() => bob.client.messages(alicesId).some((m) => m.file), "bob gets it");
    const received = bob.client.messages(alicesId).find((m) => m.file)!;
    // Bob's copy of the message names a key that does not open it: the decryption fails.
    received.file!.key = btoa(String.fromCharCode(...new Uint8Array(32)));
    const target = join(w.dir, "never.txt");
    let failed = false;
    try {
      await bob.client.saveFile(alicesId, received.id, target);
    } catch {
      failed = true;
    }
    assert(failed, "the save failed");
    assertEquals(await Deno.stat(target).catch(() => undefined), undefined);
  });

  if (backend === "embedded") {
    test("a 200 MiB file round trip in bounded memory", async (w) => {
      const [alice, bob] = [await registered(w, "alice"), await registered(w, "bob")];
      const source = join(w.dir, "big.bin");
      const file = await Deno.open(source, { write: true, create: true });
      const block = new Uint8Array(1024 * 1024);
      for (let i = 0; i < 200; i++) {
        block.fill(i);
        block.set(new TextEncoder().encode(`block ${i}`));
        await file.write(block);
      }
      file.close();
      // deno task test runs with --expose-gc: collecting before each sample measures what the
      // round trip holds (JS heap and buffers), apart from garbage not collected yet and from
      // pages the allocator keeps after freeing them (RSS, reported).
      const gc = (globalThis as { gc?: () => void }).gc;
      const live = () => {
        const usage = Deno.memoryUsage();
        return usage.heapUsed + usage.external;
      };
      gc?.();
      const baseline = { rss: Deno.memoryUsage().rss, live: live() };
      const peak = { ...baseline };
      const sampler = setInterval(() => {
        gc?.();
        peak.rss = Math.max(peak.rss, Deno.memoryUsage().rss);
        peak.live = Math.max(peak.live, live());
      }, 100);
      try {
        await alice.client.sendFile(bob.client.account!.username, source);
        const alicesId = alice.client.account!.accountId;
        await waitUntil(() => bob.client.messages(alicesId).some((m) => m.file), "the message");
        const message = bob.client.messages(alicesId).find((m) => m.file)!;
        const target = join(w.dir, "big-saved.bin");
        assertEquals(await bob.client.saveFile(alicesId, message.id, target), 200 * 1024 * 1024);
        assertEquals(await fileDigest(target), await fileDigest(source));
      } finally {
        clearInterval(sampler);
      }
      const mib = (bytes: number) => Math.round(bytes / 1024 / 1024);
      console.log(
        `200 MiB round trip (server and both clients in this process): held at most +${
          mib(peak.live - baseline.live)
        } MiB (heap and buffers after collection), RSS +${mib(peak.rss - baseline.rss)} MiB`,
      );
      if (gc) {
        // Chunks are 1 MiB with a few MiB queued per hop; 72-79 MiB were seen, almost all
        // during the upload (not attributed yet): well under the file's 200, which is the
        // point. Before downloads paused for decryption, 170 MiB were held under CPU load.
        const held = peak.live - baseline.live;
        assert(held < 128 * 1024 * 1024, `held ${mib(held)} MiB`);
      }
    });
  }

  Deno.test({
    name: `e2e files (${backend}): stop`,
    ...NO_SANITIZERS,
    fn: async () => {
      if (running) await (await running).stop();
    },
  });
}

filesE2e("embedded");
filesE2e("cluster");
