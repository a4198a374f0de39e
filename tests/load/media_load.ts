// deno-lint-ignore-file no-console -- a command-line program: the terminal is its output
/**
 * Media throughput, loopback only, bounded: `--uploads` concurrent uploads of `--mib` MiB of
 * attachment ciphertext each (1 MiB chunks, then CompleteUpload with its digest check), then
 * the same blobs downloaded concurrently; MB/s for each phase and the server's RSS growth per
 * concurrent upload. The server (media + auth, `deno run -A services/main.ts`) is a child
 * process on the embedded store with the filesystem, or with `--backend=s3` on versitygw
 * (S3_* in the environment, as `deno task test` sets them) and the embedded store.
 *
 *   deno run -A tests/load/media_load.ts [--backend=fs|s3] [--uploads=4] [--mib=50]
 */

import { join } from "node:path";
import { attachmentDigester, encryptAttachment } from "../../crypto/attachment.ts";
import {
  generateTokenKeyFile,
  importTokenKeys,
  TokenIssuer,
} from "../../services/platform/tokens.ts";
import { parseConfig } from "../../services/runtime/config.ts";
import { openStore } from "../../services/runtime/open_store.ts";
import { createLogger } from "../../services/platform/log.ts";
import {
  DownloadRequest,
  DownloadResponse,
  MediaServiceClient,
  MediaServiceService,
  UploadChunksRequest,
} from "../../proto/gen/guardyn/v1/media.ts";
import { frame, FrameReader, parseGrpcWebTrailer } from "../../proto/web_wire.ts";
import { unary } from "../support/grpc.ts";
import { webClient } from "../support/web.ts";
import { spawn } from "./child_process.ts";
import { s3VariablesFromEnv } from "../../services/store/blob_config.ts";

const args = Object.fromEntries(
  Deno.args.filter((a) => a.startsWith("--")).map((a) => {
    const [key, value] = a.slice(2).split("=");
    return [key!, value ?? "true"];
  }),
);
const BACKEND = args.backend === "s3" ? "s3" : "fs";
const UPLOADS = Math.min(16, Math.max(1, Number(args.uploads ?? 4)));
const MIB = Math.min(100, Math.max(1, Number(args.mib ?? 50)));
const CHUNK = 1024 * 1024;
type Media = InstanceType<typeof MediaServiceClient>;

/** fetch over the given Deno HTTP client (HTTP/2 with prior knowledge). */
function h2fetch(client: Deno.HttpClient, url: string, init: RequestInit): Promise<Response> {
  const withClient: RequestInit & { client: Deno.HttpClient } = { ...init, client };
  return fetch(url, withClient);
}

/** One upload and one download of `bytes` against h2_ceiling_server.ts, in MB/s. */
async function measureCeiling(client: Deno.HttpClient, bytes: number) {
  const server = spawn(
    ["run", "--allow-net=127.0.0.1", new URL("./h2_ceiling_server.ts", import.meta.url).pathname],
    {},
  );
  try {
    const base = (await server.line(/CEILING (http:\/\/\S+)/))[1]!;
    const part = new Uint8Array(1024 * 1024);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= bytes) return controller.close();
        controller.enqueue(part.slice(0, Math.min(part.length, bytes - sent)));
        sent += part.length;
      },
    }, { highWaterMark: 4 });
    let t = performance.now();
    await (await h2fetch(client, base, { method: "POST", body })).text();
    const upload = bytes / 1e6 / ((performance.now() - t) / 1000);
    t = performance.now();
    let received = 0;
    for await (const chunk of (await h2fetch(client, `${base}/?bytes=${bytes}`, {})).body!) {
      received += chunk.length;
    }
    const download = received / 1e6 / ((performance.now() - t) / 1000);
    return { upload: Number(upload.toFixed(1)), download: Number(download.toFixed(1)) };
  } finally {
    await server.kill();
  }
}

/** The grpc-status of a gRPC-Web response body (its trailer frame). */
function grpcStatusOf(body: Uint8Array): number {
  const trailer = new FrameReader(body.length).push(body).find((f) => f.flags & 0x80);
  return trailer ? parseGrpcWebTrailer(trailer.payload).code : -1;
}

const dir = await Deno.makeTempDir({ prefix: "guardyn-media-load-" });
const keysFile = join(dir, "token-keys.json");
await Deno.writeTextFile(keysFile, JSON.stringify(await generateTokenKeyFile()));
const env: Record<string, string> = {
  DOMAIN: "guardyn.load",
  LOG_LEVEL: "warn",
  GRPC_LISTENER: "off",
  GRPC_PORT: "0",
  HTTP_PORT: "0",
  METRICS_PORT: "0",
  TOKEN_KEYS_FILE: keysFile,
  SQLITE_PATH: join(dir, "g.db"),
  MEDIA_MAX_BLOB_BYTES: String(200 * 1024 * 1024),
  MEDIA_QUOTA_BYTES: String(16 * 1024 ** 3),
  MEDIA_UPLOADS_PER_HOUR: "100000",
  ...(BACKEND === "s3" ? s3VariablesFromEnv() : {}),
  MEDIA_BACKEND: BACKEND,
};
const child = spawn(
  ["run", "-A", new URL("../../services/main.ts", import.meta.url).pathname],
  env,
);
try {
  const port = Number((await child.line(/API\s+http:\/\/127\.0\.0\.1:(\d+)/))[1]);
  const config = parseConfig(env);
  const store = await openStore(config.store, createLogger({ level: "warn" }), { migrate: false });
  const issuer = new TokenIssuer(
    await importTokenKeys(JSON.parse(await Deno.readTextFile(keysFile))),
    config.hosts.api,
    3600,
  );
  const device = { accountId: crypto.randomUUID(), deviceId: crypto.randomUUID() };
  await store.auth.accounts.create({
    id: device.accountId,
    username: `m_${device.accountId.replaceAll("-", "").slice(0, 20)}`,
    passwordHash: "$argon2id$v=19$m=19456,t=2,p=1$bG9hZA$bG9hZA",
    createdAtMs: Date.now(),
  });
  await store.auth.devices.create({
    accountId: device.accountId,
    id: device.deviceId,
    name: "load",
    platform: 7,
    registrationId: 1,
    createdAtMs: Date.now(),
    lastSeenAtMs: Date.now(),
  }, 10);
  const token = (await issuer.issue(device)).token;
  const plain = new Uint8Array(MIB * 1024 * 1024).map((_, i) => (i * 7) & 0xff);
  const encrypted = encryptAttachment(new Blob([plain]).stream());
  const data = new Uint8Array(await new Response(encrypted.ciphertext).arrayBuffer());
  const digester = attachmentDigester();
  digester.update(data);
  const digest = digester.finish();
  const rssBefore = await child.rss();
  let rssPeak = rssBefore;
  const sampler = setInterval(async () => (rssPeak = Math.max(rssPeak, await child.rss())), 50);

  // The SDK's gRPC-Web client costs more CPU than the server on this 2-core machine, so the
  // lanes speak gRPC-Web over fetch with frames encoded once: the figures measure the server.
  const m = webClient<Media>(MediaServiceService, `127.0.0.1:${port}`);
  const url = (method: string) => `http://127.0.0.1:${port}/guardyn.v1.MediaService/${method}`;
  // As the SDK dials: HTTP/2 with prior knowledge (client streams need HTTP/2).
  const client = Deno.createHttpClient({ http2: true, http1: false });
  const headers = {
    "content-type": "application/grpc-web+proto",
    "x-grpc-web": "1",
    authorization: `Bearer ${token}`,
  };
  const cpu0 = await child.cpuSeconds();
  const t0 = performance.now();
  let streamedAt = 0;
  const ids = await Promise.all(Array.from({ length: UPLOADS }, async () => {
    const { mediaId } = await unary(m.createUpload.bind(m), {
      ciphertextSize: data.length,
      chunkSize: CHUNK,
      ciphertextSha256: digest,
      granteeAccountIds: [],
      granteeGroupId: new Uint8Array(),
    }, token);
    let at = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (at >= data.length) return controller.close();
        const request = { mediaId, offset: at, data: data.subarray(at, at + CHUNK) };
        controller.enqueue(frame(0, UploadChunksRequest.encode(request).finish()));
        at += CHUNK;
      },
    }, { highWaterMark: 4 });
    const response = await h2fetch(client, url("UploadChunks"), { method: "POST", headers, body });
    const status = grpcStatusOf(new Uint8Array(await response.arrayBuffer()));
    if (status !== 0) throw new Error(`UploadChunks ended with status ${status}`);
    streamedAt = Math.max(streamedAt, performance.now());
    await unary(m.completeUpload.bind(m), { mediaId }, token);
    return mediaId;
  }));
  const uploadS = (performance.now() - t0) / 1000;
  const cpu1 = await child.cpuSeconds();
  const t1 = performance.now();
  await Promise.all(ids.map(async (mediaId) => {
    const request = frame(0, DownloadRequest.encode({ mediaId, offset: 0 }).finish());
    const response = await h2fetch(client, url("Download"), {
      method: "POST",
      headers,
      body: request,
    });
    // Counts the payload bytes frame by frame, without copying them.
    const reader = new FrameReader(4 * CHUNK);
    let bytes = 0;
    for await (const part of response.body!) {
      for (const f of reader.push(part)) {
        if (f.flags === 0) bytes += DownloadResponse.decode(f.payload).data.length;
      }
    }
    if (bytes !== data.length) throw new Error(`downloaded ${bytes} of ${data.length} bytes`);
  }));
  const downloadS = (performance.now() - t1) / 1000;
  const cpu2 = await child.cpuSeconds();
  const ceiling = await measureCeiling(client, data.length);
  clearInterval(sampler);
  const total = (UPLOADS * data.length) / 1e6;
  console.log(JSON.stringify(
    {
      backend: BACKEND,
      uploads: UPLOADS,
      blob_mib: MIB,
      upload_and_complete_mb_per_s: Number((total / uploadS).toFixed(1)),
      // The chunk streams alone, and the server's digest check of the stored blobs after them.
      upload_stream_mb_per_s: Number((total / ((streamedAt - t0) / 1000)).toFixed(1)),
      complete_ms: Math.round(t0 + uploadS * 1000 - streamedAt),
      download_mb_per_s: Number((total / downloadS).toFixed(1)),
      // Server CPU (all threads) per wall second of each phase: 2.0 is both cores.
      server_cpu_upload: Number(((cpu1 - cpu0) / uploadS).toFixed(2)),
      server_cpu_download: Number(((cpu2 - cpu1) / downloadS).toFixed(2)),
      // The same loopback HTTP/2 with nothing behind it, measured in this run.
      ceiling_upload_mb_per_s: ceiling.upload,
      ceiling_download_mb_per_s: ceiling.download,
      server_rss_growth_mib_per_upload: Number(
        ((rssPeak - rssBefore) / 1048576 / UPLOADS).toFixed(1),
      ),
    },
    null,
    2,
  ));
  m.close();
  client.close();
  await store.close();
} finally {
  await child.kill();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
