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
import { MediaServiceClient, MediaServiceService } from "../../proto/gen/guardyn/v1/media.ts";
import { bearer, unary } from "../support/grpc.ts";
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

  const lanes = Array.from(
    { length: UPLOADS },
    () => webClient<Media>(MediaServiceService, `127.0.0.1:${port}`),
  );
  const t0 = performance.now();
  const ids = await Promise.all(lanes.map(async (m) => {
    const { mediaId } = await unary(m.createUpload.bind(m), {
      ciphertextSize: data.length,
      chunkSize: CHUNK,
      ciphertextSha256: digest,
      granteeAccountIds: [],
      granteeGroupId: new Uint8Array(),
    }, token);
    await new Promise<void>((resolve, reject) => {
      const call = m.uploadChunks(bearer(token), (error) => error ? reject(error) : resolve());
      void (async () => {
        for (let at = 0; at < data.length; at += CHUNK) {
          const more = call.write({ mediaId, offset: at, data: data.subarray(at, at + CHUNK) });
          if (!more) {
            const drained = call as unknown as { once: (e: string, l: () => void) => void };
            await new Promise<void>((r) => drained.once("drain", () => r()));
          }
        }
        call.end();
      })();
    });
    await unary(m.completeUpload.bind(m), { mediaId }, token);
    return mediaId;
  }));
  const uploadS = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  await Promise.all(lanes.map((m, i) =>
    new Promise<void>((resolve, reject) => {
      let bytes = 0;
      const stream = m.download({ mediaId: ids[i]!, offset: 0 }, bearer(token));
      stream.on("data", (part: { data: Uint8Array }) => (bytes += part.data.length));
      stream.on("error", reject);
      stream.on("end", () => bytes === data.length ? resolve() : reject(new Error("short")));
    })
  ));
  const downloadS = (performance.now() - t1) / 1000;
  clearInterval(sampler);
  const total = (UPLOADS * data.length) / 1e6;
  console.log(JSON.stringify(
    {
      backend: BACKEND,
      uploads: UPLOADS,
      blob_mib: MIB,
      upload_and_complete_mb_per_s: Number((total / uploadS).toFixed(1)),
      download_mb_per_s: Number((total / downloadS).toFixed(1)),
      server_rss_growth_mib_per_upload: Number(
        ((rssPeak - rssBefore) / 1048576 / UPLOADS).toFixed(1),
      ),
    },
    null,
    2,
  ));
  lanes.forEach((m) => m.close());
  await store.close();
} finally {
  await child.kill();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
