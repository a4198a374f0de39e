/**
 * Media faults on the cluster stack (Cassandra + JetStream + versitygw): the media instance
 * taking an upload is killed with SIGKILL mid-stream and restarted; the client asks for the
 * durable size and resumes from there, and the blob completes whole (digest checked).
 */

import { assert, assertEquals } from "../assert.ts";
import { startPlatform } from "../support/platform.ts";
import { bearer, unary } from "../support/grpc.ts";
import { webClient } from "../support/web.ts";
import { clients, register } from "../support/accounts_test_kit.ts";
import { deleteStreams, NATS_URL } from "../../services/bus/conformance/nats_server.ts";
import { MediaServiceClient, MediaServiceService } from "../../proto/gen/guardyn/v1/media.ts";
import { attachmentDigester, encryptAttachment } from "../../crypto/attachment.ts";
import { MessagingProcess } from "./faults_test_kit.ts";
import { NO_SANITIZERS, sleep } from "../support/wait.ts";
import { s3VariablesFromEnv } from "../../services/store/blob_config.ts";

type Media = InstanceType<typeof MediaServiceClient>;
const CHUNK = 1024 * 1024;

Deno.test({
  name: "faults: kill -9 of the media instance mid-upload; the upload resumes and completes",
  ...NO_SANITIZERS,
  fn: async () => {
    const id = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
    const env = {
      NATS_STREAM: `GUARDYN_MF_${id}`,
      NATS_SUBJECT_PREFIX: `guardyn.mf${id}.events`,
      MEDIA_BACKEND: "s3",
      ...s3VariablesFromEnv(),
    };
    const core = await startPlatform(["auth"], { backend: "cluster", env });
    const media = await MessagingProcess.start(core.env, "media");
    const m = webClient<Media>(MediaServiceService, media.address);
    try {
      const c = clients(core.address);
      const alice = await register(c);
      c.close();
      const plain = new Uint8Array(20 * 1024 * 1024).map((_, i) => (i * 13) & 0xff);
      const encrypted = encryptAttachment(new Blob([plain]).stream());
      const data = new Uint8Array(await new Response(encrypted.ciphertext).arrayBuffer());
      const digester = attachmentDigester();
      digester.update(data);
      const { mediaId } = await unary(m.createUpload.bind(m), {
        ciphertextSize: data.length,
        chunkSize: CHUNK,
        ciphertextSha256: digester.finish(),
        granteeAccountIds: [],
        granteeGroupId: new Uint8Array(),
      }, alice.accessToken);

      // A stream that is cut by the kill after 18 MiB: two 8 MiB parts are durable on S3.
      const cut = new Promise<void>((resolve) => {
        const call = m.uploadChunks(bearer(alice.accessToken), () => resolve());
        void (async () => {
          for (let at = 0; at < 18 * CHUNK; at += CHUNK) {
            call.write({ mediaId, offset: at, data: data.subarray(at, at + CHUNK) });
            await sleep(20);
          }
          await sleep(500);
          await media.kill();
        })();
      });
      await cut;
      await media.restart();
      const status = await unary(m.getUploadStatus.bind(m), { mediaId }, alice.accessToken);
      const committed = Number(status.committedSize);
      assert(committed >= 8 * CHUNK && committed % (8 * CHUNK) === 0, `committed ${committed}`);
      const resumed = await new Promise<number>((resolve, reject) => {
        const call = m.uploadChunks(
          bearer(alice.accessToken),
          (error, response) => error ? reject(error) : resolve(Number(response!.committedSize)),
        );
        for (let at = committed; at < data.length; at += CHUNK) {
          call.write({
            mediaId,
            offset: at,
            data: data.subarray(at, Math.min(at + CHUNK, data.length)),
          });
        }
        call.end();
      });
      assertEquals(resumed, data.length);
      const done = await unary(m.completeUpload.bind(m), { mediaId }, alice.accessToken);
      assertEquals(Number(done.ciphertextSize), data.length);
      await media.assertRunning();
    } finally {
      m.close();
      await media.kill();
      await core.stop();
      await deleteStreams(NATS_URL, [env.NATS_STREAM]).catch(() => {});
    }
  },
});
