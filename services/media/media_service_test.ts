/**
 * MediaService end to end through gRPC-Web: on the embedded store with the filesystem blob
 * store, and on Cassandra + JetStream with versitygw (S3) and TWO instances (uploads to one,
 * downloads and completion on the other).
 */
import * as grpc from "@grpc/grpc-js";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { assert, assertEquals } from "../../tests/assert.ts";
import { bearer, failure, unary } from "../../tests/support/grpc.ts";
import { type Backend, startPlatform, type TestPlatform } from "../../tests/support/platform.ts";
import { webClient } from "../../tests/support/web.ts";
import {
  type Clients,
  clients,
  register,
  type TestDevice,
} from "../../tests/support/accounts_test_kit.ts";
import { deleteStreams, NATS_URL } from "../bus/conformance/nats_server.ts";
import {
  type DownloadResponse,
  MediaServiceClient,
  MediaServiceService,
  MediaState,
} from "../../proto/gen/guardyn/v1/media.ts";
import type { BlobStore } from "../store/blob_ports.ts";
import { openBlobStore } from "../runtime/open_blobs.ts";
import { sweepExpiredMedia } from "./sweeper.ts";
import { attachmentDigester, encryptAttachment } from "../../crypto/attachment.ts";
import { memoryLogger } from "../platform/log.ts";
import { NO_SANITIZERS } from "../../tests/support/wait.ts";
import { s3VariablesFromEnv } from "../store/blob_config.ts";

type Media = InstanceType<typeof MediaServiceClient>;
const CHUNK = 256 * 1024;
const QUOTA = 12 * 1024 * 1024;

interface Setup {
  a: TestPlatform;
  b: TestPlatform;
  c: Clients;
  mA: Media;
  mB: Media;
  /** The same blob store the instances use, to look at it from outside. */
  blobs: BlobStore;
  stream?: string;
}

function random(size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += 65_536) crypto.getRandomValues(out.subarray(i, i + 65_536));
  return out;
}

const sha256 = (data: Uint8Array) => new Uint8Array(createHash("sha256").update(data).digest());

/** A real attachment ciphertext of about `size` bytes (what the SDK uploads). */
async function sealed(size: number): Promise<Uint8Array> {
  const encrypted = encryptAttachment(new Blob([random(size)]).stream(), { chunkSize: 256 * 1024 });
  return new Uint8Array(await new Response(encrypted.ciphertext).arrayBuffer());
}

const isAttachment = (data: Uint8Array) =>
  data.length >= 16 && data[0] === 0x47 && data[1] === 0x59 && data[2] === 0x4e && data[3] === 0x41;

function attachmentDigest(ciphertext: Uint8Array): Uint8Array {
  const digester = attachmentDigester();
  digester.update(ciphertext);
  return digester.finish();
}

/** Streams `data` from `from` on, in chunks; resolves with the server's committed size. */
function upload(
  m: Media,
  token: string,
  mediaId: string,
  data: Uint8Array,
  from: number,
  to = data.length,
) {
  return new Promise<number>((resolve, reject) => {
    const call = m.uploadChunks(
      bearer(token),
      (error, response) => error ? reject(error) : resolve(Number(response!.committedSize)),
    );
    for (let at = from; at < to; at += CHUNK) {
      call.write({
        mediaId,
        offset: at,
        data: data.subarray(at, Math.min(at + CHUNK, data.length)),
      });
    }
    call.end();
  });
}

function download(m: Media, token: string, mediaId: string, offset = 0) {
  return new Promise<Uint8Array>((resolve, reject) => {
    const parts: DownloadResponse[] = [];
    const stream = m.download({ mediaId, offset }, bearer(token));
    stream.on("data", (part: DownloadResponse) => parts.push(part));
    stream.on("error", reject);
    stream.on("end", () => {
      const out = new Uint8Array(parts.reduce((n, p) => n + p.data.length, 0));
      let at = 0;
      for (const p of parts) {
        assertEquals(Number(p.offset), offset + at, "offsets follow each other");
        out.set(p.data, at);
        at += p.data.length;
      }
      resolve(out);
    });
  });
}

export function mediaSuite(backend: Backend) {
  let running: Promise<Setup> | undefined;
  const setup = () =>
    running ??= (async () => {
      const id = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
      const s3 = backend === "cluster";
      const env: Record<string, string> = {
        REGISTRATION_BURST: "1000",
        MEDIA_QUOTA_BYTES: String(QUOTA),
        TURN_SHARED_SECRET: "a-turn-secret-for-tests",
        ...(s3
          ? {
            MEDIA_BACKEND: "s3",
            NATS_STREAM: `GUARDYN_M_${id}`,
            NATS_SUBJECT_PREFIX: `guardyn.m${id}.events`,
            ...s3VariablesFromEnv(),
          }
          : {}),
      };
      const a = await startPlatform(["auth", "media"], { backend, env });
      const b = s3 ? await startPlatform(["media"], { shared: a, env }) : a;
      // The same blob store the instances opened, to look at it from outside.
      const blobs = await openBlobStore(
        s3
          ? {
            backend: "s3",
            endpoint: env.S3_ENDPOINT!,
            region: env.S3_REGION!,
            bucket: env.S3_BUCKET!,
            accessKeyId: env.S3_ACCESS_KEY_ID!,
            secretAccessKey: env.S3_SECRET_ACCESS_KEY!,
          }
          : { backend: "fs", dir: join(a.env.SQLITE_PATH!, "..", "media") },
        memoryLogger(),
      );
      return {
        a,
        b,
        c: clients(a.address),
        mA: webClient<Media>(MediaServiceService, a.address),
        mB: webClient<Media>(MediaServiceService, b.address),
        blobs,
        ...(s3 ? { stream: env.NATS_STREAM } : {}),
      };
    })();
  const test = (name: string, fn: (s: Setup) => Promise<void>) =>
    Deno.test({
      name: `media (${backend}): ${name}`,
      ...NO_SANITIZERS,
      fn: async () => fn(await setup()),
    });

  async function create(
    s: Setup,
    owner: TestDevice,
    data: Uint8Array,
    grantees: string[] = [],
    // Random bytes (never uploaded whole) get a dummy digest.
    digest = isAttachment(data) ? attachmentDigest(data) : new Uint8Array(32),
  ) {
    const created = await unary(s.mA.createUpload.bind(s.mA), {
      ciphertextSize: data.length,
      chunkSize: CHUNK,
      ciphertextSha256: digest,
      granteeAccountIds: grantees,
      granteeGroupId: new Uint8Array(),
    }, owner.accessToken);
    return created.mediaId;
  }

  test("upload, complete, download by grantees only; others learn nothing", async (s) => {
    const [alice, bob, eve] = [await register(s.c), await register(s.c), await register(s.c)];
    const data = await sealed(3 * CHUNK + 1234);
    const mediaId = await create(s, alice, data, [bob.accountId]);
    assertEquals(await upload(s.mA, alice.accessToken, mediaId, data, 0), data.length);
    const done = await unary(s.mB.completeUpload.bind(s.mB), { mediaId }, alice.accessToken);
    assertEquals(Number(done.ciphertextSize), data.length);
    assertEquals(await download(s.mB, bob.accessToken, mediaId), data);
    assertEquals(await download(s.mB, bob.accessToken, mediaId, 700_001), data.subarray(700_001));
    assertEquals(await download(s.mA, alice.accessToken, mediaId), data);
    const refused = await failure(download(s.mB, eve.accessToken, mediaId));
    const unknown = await failure(download(s.mB, eve.accessToken, "A".repeat(22)));
    assertEquals([refused.code, refused.reason], [grpc.status.NOT_FOUND, "NOT_FOUND"]);
    assertEquals([unknown.code, unknown.details], [refused.code, refused.details], "same answer");
    // The blob store holds exactly the ciphertext under the media id, nothing else.
    assertEquals(await s.blobs.size(mediaId), data.length);
    await unary(s.mA.deleteMedia.bind(s.mA), { mediaId }, alice.accessToken);
    assertEquals(await s.blobs.size(mediaId), undefined);
    assertEquals(
      (await failure(download(s.mB, bob.accessToken, mediaId))).code,
      grpc.status.NOT_FOUND,
    );
  });

  test("an upload cut short resumes from the committed size, on another instance", async (s) => {
    const alice = await register(s.c);
    // On S3 only whole 8 MiB parts are durable: cut after more than one part.
    const data = await sealed(10 * 1024 * 1024 + 777);
    const mediaId = await create(s, alice, data);
    const cut = 9 * 1024 * 1024;
    const first = await upload(s.mA, alice.accessToken, mediaId, data, 0, cut);
    assert(first > 0 && first <= cut, `committed ${first}`);
    const status = await unary(s.mB.getUploadStatus.bind(s.mB), { mediaId }, alice.accessToken);
    assertEquals([status.state, Number(status.committedSize)], [
      MediaState.MEDIA_STATE_UPLOADING,
      first,
    ]);
    const wrongOffset = await failure(
      upload(s.mB, alice.accessToken, mediaId, data, first + CHUNK),
    );
    assertEquals(wrongOffset.reason, "OFFSET_MISMATCH");
    assertEquals(await upload(s.mB, alice.accessToken, mediaId, data, first), data.length);
    await unary(s.mA.completeUpload.bind(s.mA), { mediaId }, alice.accessToken);
    assertEquals(sha256(await download(s.mA, alice.accessToken, mediaId)), sha256(data));
    await unary(s.mA.deleteMedia.bind(s.mA), { mediaId }, alice.accessToken);
  });

  test("a digest mismatch discards the upload; incomplete and oversized are refused", async (s) => {
    const alice = await register(s.c);
    const data = await sealed(CHUNK + 10);
    const lying = await create(s, alice, data, [], new Uint8Array(32).fill(9));
    await upload(s.mA, alice.accessToken, lying, data, 0);
    const mismatch = await failure(
      unary(s.mB.completeUpload.bind(s.mB), { mediaId: lying }, alice.accessToken),
    );
    assertEquals(mismatch.reason, "DIGEST_MISMATCH");
    assertEquals(await s.blobs.size(lying), undefined, "the bytes are gone");
    const gone = await failure(
      unary(s.mB.getUploadStatus.bind(s.mB), { mediaId: lying }, alice.accessToken),
    );
    assertEquals(gone.code, grpc.status.NOT_FOUND);

    const partial = await create(s, alice, data);
    await upload(s.mA, alice.accessToken, partial, data, 0, CHUNK);
    const incomplete = await failure(
      unary(s.mA.completeUpload.bind(s.mA), { mediaId: partial }, alice.accessToken),
    );
    assertEquals(incomplete.reason, "UPLOAD_INCOMPLETE");
    const badChunk = await failure(
      new Promise((resolve, reject) => {
        const call = s.mA.uploadChunks(
          bearer(alice.accessToken),
          (e, r) => e ? reject(e) : resolve(r),
        );
        call.write({ mediaId: partial, offset: 0, data: new Uint8Array(10) });
        call.end();
      }),
    );
    assert(
      badChunk.reason === "OFFSET_MISMATCH" || badChunk.reason === "INVALID_ARGUMENT",
      badChunk.details,
    );
    const tooBig = await failure(unary(s.mA.createUpload.bind(s.mA), {
      ciphertextSize: 200 * 1024 * 1024,
      chunkSize: CHUNK,
      ciphertextSha256: new Uint8Array(32),
      granteeAccountIds: [],
      granteeGroupId: new Uint8Array(),
    }, alice.accessToken));
    assert(tooBig.details.includes("104857600"), tooBig.details);
    await unary(s.mA.deleteMedia.bind(s.mA), { mediaId: partial }, alice.accessToken);
  });

  test("the quota refuses what would pass it; deleting frees it", async (s) => {
    const alice = await register(s.c);
    const big = random(8 * 1024 * 1024);
    const first = await create(s, alice, big);
    const over = await failure(create(s, alice, random(5 * 1024 * 1024)));
    assertEquals([over.code, over.reason], [grpc.status.RESOURCE_EXHAUSTED, "LIMIT_EXCEEDED"]);
    assert(over.details.includes(String(QUOTA)), over.details);
    await unary(s.mA.deleteMedia.bind(s.mA), { mediaId: first }, alice.accessToken);
    await create(s, alice, random(5 * 1024 * 1024));
  });

  test("the sweeper deletes abandoned uploads and expired blobs", async (s) => {
    const alice = await register(s.c);
    const data = await sealed(CHUNK);
    const abandoned = await create(s, alice, data);
    const kept = await create(s, alice, data);
    await upload(s.mA, alice.accessToken, kept, data, 0);
    await unary(s.mA.completeUpload.bind(s.mA), { mediaId: kept }, alice.accessToken);
    const store = s.a.platform.deps.store;
    // A day later the upload's deadline has passed; the completed blob keeps its 30 days.
    await sweepExpiredMedia(
      { media: store.media, blobs: s.blobs, log: memoryLogger() },
      Date.now() + 2 * 86_400_000,
    );
    assertEquals(await store.media.get(abandoned), undefined);
    assertEquals((await store.media.get(kept))?.state, "complete");
    await sweepExpiredMedia(
      { media: store.media, blobs: s.blobs, log: memoryLogger() },
      Date.now() + 31 * 86_400_000,
    );
    assertEquals(await store.media.get(kept), undefined);
    assertEquals(await s.blobs.size(kept), undefined, "the bytes went with it");
  });

  test("a group grant follows the group's members at download time", async (s) => {
    const [alice, bob, eve] = [await register(s.c), await register(s.c), await register(s.c)];
    const store = s.a.platform.deps.store;
    const groupId = crypto.getRandomValues(new Uint8Array(16));
    const aliceDevice = { accountId: alice.accountId, deviceId: alice.deviceId };
    const bobDevice = { accountId: bob.accountId, deviceId: bob.deviceId };
    await store.groups.create({
      groupId,
      cipherSuite: 1,
      creator: aliceDevice,
      groupInfo: new Uint8Array(0),
      nowMs: Date.now(),
    });
    await store.groups.commit({
      groupId,
      epoch: 0,
      members: [{ leafIndex: 0, device: aliceDevice }, { leafIndex: 1, device: bobDevice }],
      groupInfo: new Uint8Array(0),
      nowMs: Date.now(),
      retentionMs: 3600_000,
      commit: {
        epoch: 0,
        commit: new Uint8Array([1]),
        welcome: new Uint8Array(0),
        groupInfo: new Uint8Array(0),
        sender: aliceDevice,
        recordKey: crypto.getRandomValues(new Uint8Array(32)),
        added: [bobDevice],
        removed: [],
        serverTimestampMs: Date.now(),
      },
    });
    const data = await sealed(CHUNK);
    const created = await unary(s.mA.createUpload.bind(s.mA), {
      ciphertextSize: data.length,
      chunkSize: CHUNK,
      ciphertextSha256: attachmentDigest(data),
      granteeAccountIds: [],
      granteeGroupId: groupId,
    }, alice.accessToken);
    await upload(s.mA, alice.accessToken, created.mediaId, data, 0);
    await unary(s.mA.completeUpload.bind(s.mA), { mediaId: created.mediaId }, alice.accessToken);
    assertEquals(await download(s.mB, bob.accessToken, created.mediaId), data);
    assertEquals(
      (await failure(download(s.mB, eve.accessToken, created.mediaId))).code,
      grpc.status.NOT_FOUND,
    );
    // Bob's device leaves the group: from now on the blob does not exist for him.
    await store.groups.dropMember(groupId, bobDevice);
    assertEquals(
      (await failure(download(s.mB, bob.accessToken, created.mediaId))).code,
      grpc.status.NOT_FOUND,
    );
    // A group the uploader is not in cannot be granted.
    const foreign = await failure(unary(s.mA.createUpload.bind(s.mA), {
      ciphertextSize: data.length,
      chunkSize: CHUNK,
      ciphertextSha256: attachmentDigest(data),
      granteeAccountIds: [],
      granteeGroupId: groupId,
    }, eve.accessToken));
    assertEquals(foreign.code, grpc.status.NOT_FOUND);
  });

  test("TURN credentials: coturn's scheme, no account id inside", async (s) => {
    const alice = await register(s.c);
    const turn = await unary(s.mA.getTurnCredentials.bind(s.mA), {}, alice.accessToken);
    assert(/^\d{10}:[A-Za-z0-9_-]{16}$/.test(turn.username), turn.username);
    assert(!turn.username.includes(alice.accountId));
    assertEquals(turn.urls[0], "turn:turn.guardyn.test:3478?transport=udp");
    assert(turn.ttlSeconds > 0 && turn.ttlSeconds <= 86_400);
  });

  Deno.test({
    name: `media (${backend}): stop`,
    ...NO_SANITIZERS,
    fn: async () => {
      if (!running) return;
      const s = await running;
      s.c.close();
      s.mA.close();
      s.mB.close();
      if (s.b !== s.a) await s.b.stop();
      await s.a.stop();
      if (s.stream) await deleteStreams(NATS_URL, [s.stream]);
    },
  });
}

mediaSuite("embedded");
mediaSuite("cluster");
