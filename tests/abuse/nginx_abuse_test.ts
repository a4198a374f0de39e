/**
 * The ingress path: NGINX in front of an instance, configured as the Kubernetes ingress is
 * (tests/abuse/nginx.ts). SDK users talk through it while it is flooded and abused; the
 * instance stays up, its health answers, at least 99 % of the sends succeed and nothing is lost.
 */

import { assert } from "../assert.ts";
import { NO_SANITIZERS, sleep } from "../support/wait.ts";
import {
  assertSurvived,
  conversation,
  emptyGrpcBody,
  forMs,
  run,
  startTarget,
  underAttack,
} from "./abuse_kit.ts";
import { goaway, headers, RawH2, requestHeaders, rstStream } from "./h2_frames.ts";
import { startNginx } from "./nginx.ts";

const HEALTH = "/grpc.health.v1.Health/Check";

Deno.test({
  name: "abuse (through nginx, as the ingress): floods, rapid resets and GOAWAYs",
  ...NO_SANITIZERS,
  fn: async () => {
    // NGINX is a trusted proxy here, as the ingress is in the cluster.
    const target = await startTarget({ TRUSTED_PROXY_CIDRS: "127.0.0.1/32" });
    const nginx = await startNginx(target.httpPort);
    const talk = await conversation(target, nginx.port);
    try {
      const body = await emptyGrpcBody(target.dir);
      assertSurvived(
        "via nginx, h2load 20 x 100 streams",
        await underAttack(target, talk, async () => {
          const out = await run("h2load", [
            ...["-n", "20000", "-c", "20", "-m", "100"],
            ...["-H", "content-type: application/grpc-web+proto", "-d", body],
            `http://127.0.0.1:${nginx.port}${HEALTH}`,
          ]);
          assert(/requests: 20000 total/.test(out), out);
        }),
      );
      assertSurvived(
        "via nginx, rapid reset and GOAWAY with open streams",
        await underAttack(target, talk, () =>
          forMs(3_000, async () => {
            const raw = await RawH2.open(nginx.port);
            const frames: Uint8Array[] = [];
            for (let id = 1; id < 2_000; id += 2) {
              frames.push(headers(id, requestHeaders(HEALTH)), rstStream(id));
            }
            for (let id = 2_001; id < 2_101; id += 2) {
              frames.push(headers(id, requestHeaders(HEALTH)));
            }
            frames.push(goaway(0));
            await raw.write(...frames);
            await sleep(5);
            raw.close();
          })),
      );
    } finally {
      await talk.close();
      await nginx.stop();
      await target.stop();
    }
  },
});
