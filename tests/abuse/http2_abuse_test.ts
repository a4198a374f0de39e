/**
 * No client can take an instance down. Each case attacks the HTTP listener (gRPC-Web/Connect
 * on Deno.serve, the path the SDK uses) of an instance running in its own process while two SDK
 * users keep talking, then asserts: the process is alive, health answers, at least 99 % of the
 * users' sends succeeded (with the SDK's normal retries), and no sent message was lost.
 *
 * The last case attacks the native gRPC listener (grpc-js in supervised gateway workers), whose
 * runtime can abort in nghttp2 (denoland/deno#36788): it reports that listener's availability
 * under attack and the worker restarts, and asserts the instance itself never went down.
 */

import { assert, assertEquals } from "../assert.ts";
import { NO_SANITIZERS, sleep } from "../support/wait.ts";
import {
  assertSurvived,
  type Conversation,
  conversation,
  emptyGrpcBody,
  forMs,
  nativeAnswers,
  run,
  startTarget,
  type Target,
  underAttack,
  webHealthy,
  workerRestarts,
} from "./abuse_kit.ts";
import {
  Flag,
  FrameType,
  goaway,
  grpcData,
  h2frame,
  headers,
  hpack,
  ping,
  RawH2,
  requestHeaders,
  rstStream,
  settings,
  SETTINGS_INITIAL_WINDOW_SIZE,
} from "./h2_frames.ts";

const HEALTH = "/grpc.health.v1.Health/Check";
/** Every attack stops by itself within this long. */
const ATTACK_MS = 3_000;

let target: Target | undefined;
let talk: Conversation | undefined;
const setup = async () => {
  target ??= await startTarget();
  talk ??= await conversation(target);
  return { target, talk };
};

function abuse(name: string, attack: (target: Target) => Promise<void>) {
  Deno.test({
    name: `abuse (http listener): ${name}`,
    ...NO_SANITIZERS,
    fn: async () => {
      const { target, talk } = await setup();
      assertSurvived(name, await underAttack(target, talk, () => attack(target)));
    },
  });
}

abuse("h2load flood: 20 connections x 100 streams, 20,000 calls", async (target) => {
  const body = await emptyGrpcBody(target.dir);
  const out = await run("h2load", [
    ...["-n", "20000", "-c", "20", "-m", "100"],
    ...["-H", "content-type: application/grpc-web+proto", "-d", body],
    `http://127.0.0.1:${target.httpPort}${HEALTH}`,
  ]);
  assert(/requests: 20000 total/.test(out), out);
});

abuse("h2load flood: 300 connections at once", async (target) => {
  const body = await emptyGrpcBody(target.dir);
  const out = await run("h2load", [
    ...["-n", "6000", "-c", "300", "-m", "4"],
    ...["-H", "content-type: application/grpc-web+proto", "-d", body],
    `http://127.0.0.1:${target.httpPort}${HEALTH}`,
  ]);
  assert(/requests: 6000 total/.test(out), out);
});

abuse("rapid reset: HEADERS then RST_STREAM in a loop", async (target) => {
  await forMs(ATTACK_MS, async () => {
    const raw = await RawH2.open(target.httpPort);
    const block = requestHeaders(HEALTH);
    const frames: Uint8Array[] = [];
    for (let id = 1; id < 4_000; id += 2) frames.push(headers(id, block), rstStream(id));
    await raw.write(...frames);
    raw.close();
  });
});

abuse("GOAWAY with open streams, then more frames", async (target) => {
  await forMs(ATTACK_MS, async () => {
    const raw = await RawH2.open(target.httpPort);
    const block = requestHeaders(HEALTH);
    const frames: Uint8Array[] = [];
    for (let id = 1; id < 200; id += 2) frames.push(headers(id, block));
    frames.push(goaway(0), grpcData(1), ping(7), rstStream(3));
    await raw.write(...frames);
    await sleep(5);
    raw.close();
  });
});

abuse("RST_STREAM, PING and SETTINGS floods", async (target) => {
  await forMs(ATTACK_MS, async () => {
    const raw = await RawH2.open(target.httpPort);
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 2_000; i++) frames.push(rstStream(2 * i + 1), ping(i), settings());
    await raw.write(...frames);
    raw.close();
  });
});

abuse("oversized HEADERS and an endless CONTINUATION", async (target) => {
  await forMs(ATTACK_MS, async () => {
    const raw = await RawH2.open(target.httpPort);
    const junk = hpack([["x-junk", "x".repeat(15_000)]]);
    // HEADERS without END_HEADERS, then CONTINUATION frames that never end the block.
    const frames = [h2frame(FrameType.HEADERS, 0, 1, requestHeaders(HEALTH))];
    for (let i = 0; i < 300; i++) frames.push(h2frame(FrameType.CONTINUATION, 0, 1, junk));
    await raw.write(...frames);
    // A header block far over any limit in one HEADERS frame on another connection.
    const big = await RawH2.open(target.httpPort);
    await big.write(
      h2frame(FrameType.HEADERS, Flag.END_HEADERS, 1, hpack([["x-big", "y".repeat(16_000)]])),
    );
    raw.close();
    big.close();
  });
});

abuse("a reader that opens its window to zero and never reads", async (target) => {
  const readers: RawH2[] = [];
  for (let c = 0; c < 50; c++) {
    const raw = await RawH2.open(target.httpPort, { read: false, preface: false });
    const frames = [
      new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
      settings([[SETTINGS_INITIAL_WINDOW_SIZE, 0]]),
    ];
    for (let id = 1; id < 200; id += 2) {
      frames.push(headers(id, requestHeaders(HEALTH)), grpcData(id));
    }
    await raw.write(...frames);
    readers.push(raw);
  }
  await sleep(ATTACK_MS);
  for (const raw of readers) raw.close();
});

abuse("2,000 idle connections held open", async (target) => {
  const idle: RawH2[] = [];
  for (let c = 0; c < 2_000; c++) {
    idle.push(await RawH2.open(target.httpPort, { read: false }));
  }
  await sleep(ATTACK_MS);
  for (const raw of idle) raw.close();
});

abuse("malformed gRPC framing is refused with a status, not a crash", async (target) => {
  const post = async (
    body: Uint8Array<ArrayBuffer>,
    contentType = "application/grpc-web+proto",
    path = HEALTH,
  ) => {
    const response = await fetch(`http://127.0.0.1:${target.httpPort}${path}`, {
      method: "POST",
      headers: { "content-type": contentType },
      body,
    });
    return {
      status: response.status,
      text: new TextDecoder().decode(await response.arrayBuffer()),
    };
  };
  const lengthPrefix = (flags: number, length: number, payload = new Uint8Array(0)) => {
    const out = new Uint8Array(5 + payload.length);
    out[0] = flags;
    new DataView(out.buffer).setUint32(1, length);
    out.set(payload, 5);
    return out;
  };
  await forMs(ATTACK_MS, async () => {
    // A length prefix of 1 GiB: refused from the header, before any buffering.
    const huge = await post(lengthPrefix(0, 1 << 30));
    assert(/grpc-status:8/.test(huge.text), huge.text);
    // The compressed flag without an encoding.
    const compressed = await post(lengthPrefix(1, 2, new Uint8Array([8, 1])));
    assert(/grpc-status:3/.test(compressed.text), compressed.text);
    // A message cut short.
    const truncated = await post(lengthPrefix(0, 10, new Uint8Array([8])));
    assert(/grpc-status:3/.test(truncated.text), truncated.text);
    // Garbage that is not protobuf (Login decodes strictly; the health service does not).
    const garbage = await post(
      lengthPrefix(0, 3, new Uint8Array([0xff, 0xff, 0xff])),
      "application/grpc-web+proto",
      "/guardyn.v1.AuthService/Login",
    );
    assert(/grpc-status:3/.test(garbage.text), garbage.text);
    // An unknown content type.
    const unknown = await post(new Uint8Array(5), "text/plain");
    assertEquals(unknown.status, 415);
  });
});

Deno.test({
  name: "abuse (native gRPC workers): the issue's h2load run and rapid resets; availability",
  ...NO_SANITIZERS,
  fn: async () => {
    const { target, talk } = await setup();
    const body = await emptyGrpcBody(target.dir);
    let probes = 0;
    let answered = 0;
    let probing = true;
    const prober = (async () => {
      while (probing) {
        probes++;
        if (await nativeAnswers(target.grpcPort)) answered++;
        await sleep(20);
      }
    })();
    const report = await underAttack(target, talk, async () => {
      for (let round = 0; round < 3; round++) {
        await run("h2load", [
          ...["-n", "20000", "-c", "20", "-m", "100"],
          ...["-H", "content-type: application/grpc", "-H", "te: trailers", "-d", body],
          `http://127.0.0.1:${target.grpcPort}${HEALTH}`,
        ], 20_000);
      }
      await forMs(1_000, async () => {
        const raw = await RawH2.open(target.grpcPort);
        const frames: Uint8Array[] = [];
        for (let id = 1; id < 2_000; id += 2) {
          frames.push(headers(id, requestHeaders(HEALTH, "application/grpc")), rstStream(id));
        }
        frames.push(goaway(0));
        await raw.write(...frames);
        raw.close();
      });
    });
    probing = false;
    await prober;
    const restarts = await workerRestarts(target);
    console.log(
      `abuse native gRPC: ${answered}/${probes} health probes answered during the attack ` +
        `(${(100 * answered / Math.max(1, probes)).toFixed(1)} %), ${restarts} worker restart(s)`,
    );
    // The SDK's path and the instance are untouched by whatever happened to the workers.
    assertSurvived("native gRPC attack", report);
    // And the native port serves again within a second of the attack.
    let back = false;
    for (let i = 0; i < 10 && !back; i++) back = await nativeAnswers(target.grpcPort, 100);
    assert(back, "the native gRPC port did not serve within a second after the attack");
  },
});

Deno.test({
  name: "abuse: stop",
  ...NO_SANITIZERS,
  fn: async () => {
    await talk?.close();
    if (target) {
      assert(await webHealthy(target.httpPort));
      await target.stop();
    }
  },
});
