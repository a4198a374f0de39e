/**
 * The generated contracts work end to end with grpc-js: a real server on 127.0.0.1 implements
 * RPCs from the generated service definitions, the generated clients call them, and what
 * arrives equals what was sent (bytes, int64/uint64, nested and absent messages, oneofs,
 * enums, the error-reason trailers). Plus the pure parts of the generation task.
 */

import * as grpc from "@grpc/grpc-js";
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import {
  type FetchPrekeyBundlesRequest,
  type FetchPrekeyBundlesResponse,
  type GetPrekeyCountsResponse,
  KeyDirectoryServiceClient,
  type KeyDirectoryServiceServer,
  KeyDirectoryServiceService,
} from "../proto/gen/guardyn/v1/auth.ts";
import {
  ErrorReason,
  errorReasonFromJSON,
  MismatchedDevices,
} from "../proto/gen/guardyn/v1/common.ts";
import {
  ClosedReason,
  EnvelopeType,
  MessagingServiceClient,
  type MessagingServiceServer,
  MessagingServiceService,
  type ReceiveRequest,
  type ReceiveResponse,
  type SendMessageRequest,
  type SendMessageResponse,
  type SendStreamRequest,
  type SendStreamResponse,
} from "../proto/gen/guardyn/v1/messaging.ts";
import { staleFiles, staleReport, toolSpecifiers } from "./proto.ts";

const REASON_KEY = "guardyn-error-reason";
const DETAIL_KEY = "guardyn-error-detail-bin";

/** Copies every byte array into a plain Uint8Array: decoded bytes are views of grpc-js Buffers. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

/** What the in-test handlers saw, so the test can compare it with what the client sent. */
interface Seen {
  sendMessage: SendMessageRequest[];
  fetchPrekeyBundles: FetchPrekeyBundlesRequest[];
  receive: ReceiveRequest[];
  authorization: unknown[];
}

// Values beyond 32 bits, so a 64-bit field that lost its high half would show.
const SERVER_TIME_MS = 1_763_000_000_123;
const SEQ = 2 ** 40 + 7;
const MAX_SAFE_NONCE = Number.MAX_SAFE_INTEGER;

const IDENTITY_KEY = bytes(0x05, ...new Array(32).fill(0).map((_, i) => i));
const COUNTS: GetPrekeyCountsResponse = {
  oneTimePrekeyCount: 97,
  kyberPrekeyCount: 3,
  signedPrekeyId: 16_777_215,
  signedPrekeyUploadedAtMs: SERVER_TIME_MS,
  hasLastResortKyberPrekey: true,
};
const BUNDLES: FetchPrekeyBundlesResponse = {
  accountId: "acct-bob",
  identityKey: IDENTITY_KEY,
  bundles: [
    {
      deviceId: "dev-1",
      registrationId: 2_147_483_647,
      signedPrekey: { keyId: 1, publicKey: bytes(5, 1, 2), signature: new Uint8Array(64).fill(9) },
      oneTimePrekey: { keyId: 77, publicKey: bytes(5, 3, 4) },
      kyberPrekey: { keyId: 8, publicKey: new Uint8Array(1569).fill(8), signature: bytes(1) },
      kyberPrekeyLastResort: false,
      oneTimePrekeysExhausted: false,
    },
    {
      // Exhausted device: no one-time EC prekey at all (an absent optional message).
      deviceId: "dev-2",
      registrationId: 1,
      signedPrekey: { keyId: 2, publicKey: bytes(5, 0), signature: bytes(7, 7) },
      oneTimePrekey: undefined,
      kyberPrekey: { keyId: 9, publicKey: bytes(8, 255), signature: bytes(0) },
      kyberPrekeyLastResort: true,
      oneTimePrekeysExhausted: true,
    },
  ],
};

function keyDirectoryHandlers(seen: Seen): Pick<
  KeyDirectoryServiceServer,
  "getPrekeyCounts" | "fetchPrekeyBundles"
> {
  return {
    getPrekeyCounts: (_call, callback) => callback(null, COUNTS),
    fetchPrekeyBundles: (call, callback) => {
      seen.fetchPrekeyBundles.push(call.request);
      callback(null, BUNDLES);
    },
  };
}

function messagingHandlers(seen: Seen): MessagingServiceServer {
  return {
    sendMessage: (call, callback) => {
      seen.sendMessage.push(call.request);
      seen.authorization.push(call.metadata.get("authorization")[0]);
      const { request } = call;
      if (request.envelopes.length === 0) {
        // The documented precondition failure: reason name and MismatchedDevices detail.
        const trailer = new grpc.Metadata();
        trailer.set(REASON_KEY, "MISMATCHED_DEVICES");
        const detail = MismatchedDevices.encode({
          missingDevices: [{ accountId: request.recipientAccountId, deviceId: "dev-9" }],
          extraDevices: [],
          staleDevices: [],
        }).finish();
        trailer.set(DETAIL_KEY, Buffer.from(detail));
        callback({
          code: grpc.status.FAILED_PRECONDITION,
          details: "envelopes do not match the recipient's devices",
          metadata: trailer,
        });
        return;
      }
      const all = [
        ...request.envelopes.map((e) => ({ accountId: request.recipientAccountId, e })),
        ...request.syncEnvelopes.map((e) => ({ accountId: "acct-alice", e })),
      ];
      callback(null, {
        serverTimestampMs: SERVER_TIME_MS,
        envelopes: all.map(({ accountId, e }, i) => ({
          recipient: { accountId, deviceId: e.deviceId },
          envelopeId: `env-${i}`,
        })),
        duplicate: false,
      });
    },
    // Answers every streamed send with a precondition failure, echoing the request id.
    sendStream: (call) => {
      call.on("data", (request: SendStreamRequest) => {
        call.write(
          {
            requestId: request.requestId,
            result: {
              $case: "failed",
              value: {
                code: grpc.status.FAILED_PRECONDITION,
                reason: ErrorReason.ERROR_REASON_STALE_DEVICES,
                message: `stale: ${request.send?.clientMessageId}`,
                detail: bytes(0, 255),
                retryAfterMs: 0,
              },
            },
          } satisfies SendStreamResponse,
        );
      });
      call.on("end", () => call.end());
    },
    receive: (call) => {
      call.write(
        {
          event: {
            $case: "envelope",
            value: {
              id: "env-0",
              seq: SEQ,
              sender: { accountId: "acct-alice", deviceId: "dev-a" },
              clientMessageId: "m-1",
              type: EnvelopeType.ENVELOPE_TYPE_MLS_PRIVATE_MESSAGE,
              content: bytes(0, 1, 2, 254, 255),
              serverTimestampMs: SERVER_TIME_MS,
              ephemeral: false,
              groupId: bytes(0xaa, 0xbb),
            },
          },
        } satisfies ReceiveResponse,
      );
      call.write({ event: { $case: "queueDrained", value: { backlogCount: 1 } } });
      call.on("data", (request: ReceiveRequest) => {
        seen.receive.push(request);
        const kind = request.kind;
        if (kind?.$case === "ping") {
          call.write({
            event: {
              $case: "pong",
              value: { nonce: kind.value.nonce, serverTimeMs: SERVER_TIME_MS },
            },
          });
        } else if (kind?.$case === "ack") {
          call.write({
            event: { $case: "closed", value: { reason: ClosedReason.CLOSED_REASON_REPLACED } },
          });
          call.end();
        }
      });
    },
    // The half-duplex forms are not exercised by this wire-format test.
    receiveEvents: (call) => call.end(),
    acknowledge: (_call, callback) => callback(null, {}),
  };
}

interface Harness {
  seen: Seen;
  messaging: InstanceType<typeof MessagingServiceClient>;
  keys: InstanceType<typeof KeyDirectoryServiceClient>;
  close(): void;
}

async function harness(): Promise<Harness> {
  const seen: Seen = { sendMessage: [], fetchPrekeyBundles: [], receive: [], authorization: [] };
  const server = new grpc.Server();
  server.addService(MessagingServiceService, messagingHandlers(seen));
  server.addService(KeyDirectoryServiceService, keyDirectoryHandlers(seen));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createInsecure(),
      (error, bound) => error ? reject(error) : resolve(bound),
    )
  );
  const address = `127.0.0.1:${port}`;
  const credentials = grpc.credentials.createInsecure();
  const messaging = new MessagingServiceClient(address, credentials);
  const keys = new KeyDirectoryServiceClient(address, credentials);
  return {
    seen,
    messaging,
    keys,
    close: () => {
      messaging.close();
      keys.close();
      server.forceShutdown();
    },
  };
}

function bearer(token: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

/** Adapts a generated callback-style unary method to a promise. */
function unary<T>(
  invoke: (callback: (error: grpc.ServiceError | null, response: T) => void) => unknown,
): Promise<T> {
  return new Promise((resolve, reject) =>
    invoke((error, response) => error ? reject(error) : resolve(response))
  );
}

Deno.test("proto: SendMessage round-trips bytes, repeated messages and int64 through grpc-js", async () => {
  const h = await harness();
  try {
    const request: SendMessageRequest = {
      recipientAccountId: "acct-bob",
      clientMessageId: "0b7c6a52-3f0e-4a55-9d5e-3f1f0c9d2a11",
      envelopes: [
        {
          deviceId: "dev-1",
          registrationId: 2_147_483_647,
          type: EnvelopeType.ENVELOPE_TYPE_PREKEY_MESSAGE,
          content: Uint8Array.from({ length: 300 }, (_, i) => i % 256),
        },
        {
          deviceId: "dev-2",
          registrationId: 1,
          type: EnvelopeType.ENVELOPE_TYPE_RATCHET_MESSAGE,
          content: bytes(0),
        },
      ],
      syncEnvelopes: [{
        deviceId: "dev-a2",
        registrationId: 42,
        type: EnvelopeType.ENVELOPE_TYPE_RATCHET_MESSAGE,
        content: bytes(255, 0, 255),
      }],
      ephemeral: false,
      silent: true,
      ttlSeconds: 60,
      urgent: false,
    };
    const response = await unary<SendMessageResponse>((cb) =>
      h.messaging.sendMessage(request, bearer("token-1"), cb)
    );

    assertEquals(h.seen.sendMessage.length, 1);
    const received = h.seen.sendMessage[0]!;
    assert(received.envelopes[0]!.content instanceof Uint8Array);
    assertEquals(plain(received), plain(request));
    assertEquals(h.seen.authorization, ["Bearer token-1"]);

    assertEquals(plain(response), {
      serverTimestampMs: SERVER_TIME_MS,
      envelopes: [
        { recipient: { accountId: "acct-bob", deviceId: "dev-1" }, envelopeId: "env-0" },
        { recipient: { accountId: "acct-bob", deviceId: "dev-2" }, envelopeId: "env-1" },
        { recipient: { accountId: "acct-alice", deviceId: "dev-a2" }, envelopeId: "env-2" },
      ],
      duplicate: false,
    });
    assertEquals(typeof response.serverTimestampMs, "number");
  } finally {
    h.close();
  }
});

Deno.test("proto: key directory bundles keep nested bytes and absent one-time prekeys", async () => {
  const h = await harness();
  try {
    const counts = await unary<GetPrekeyCountsResponse>((cb) =>
      h.keys.getPrekeyCounts({}, bearer("token-2"), cb)
    );
    assertEquals(counts, COUNTS);

    const request: FetchPrekeyBundlesRequest = { accountId: "acct-bob", deviceId: "" };
    const response = await unary<FetchPrekeyBundlesResponse>((cb) =>
      h.keys.fetchPrekeyBundles(request, bearer("token-2"), cb)
    );
    assertEquals(h.seen.fetchPrekeyBundles, [request]);
    assertEquals(plain(response), plain(BUNDLES));
    assertEquals(response.bundles[1]!.oneTimePrekey, undefined);
    assertEquals(response.bundles[0]!.kyberPrekey!.publicKey.byteLength, 1569);
  } finally {
    h.close();
  }
});

Deno.test("proto: a precondition failure carries the reason and a decodable MismatchedDevices", async () => {
  const h = await harness();
  try {
    const request: SendMessageRequest = {
      recipientAccountId: "acct-bob",
      clientMessageId: "m-2",
      envelopes: [],
      syncEnvelopes: [],
      ephemeral: false,
      silent: false,
      ttlSeconds: 0,
      urgent: false,
    };
    let failure: grpc.ServiceError | undefined;
    try {
      await unary<SendMessageResponse>((cb) =>
        h.messaging.sendMessage(request, bearer("token-3"), cb)
      );
    } catch (error) {
      failure = error as grpc.ServiceError;
    }
    assert(failure, "the call must fail");
    assertEquals(failure.code, grpc.status.FAILED_PRECONDITION);
    const reason = failure.metadata.get(REASON_KEY)[0];
    assertEquals(reason, "MISMATCHED_DEVICES");
    assertEquals(
      errorReasonFromJSON(`ERROR_REASON_${reason}`),
      ErrorReason.ERROR_REASON_MISMATCHED_DEVICES,
    );
    const detail = failure.metadata.get(DETAIL_KEY)[0];
    assert(detail instanceof Uint8Array, "binary detail metadata");
    assertEquals(plain(MismatchedDevices.decode(detail)), {
      missingDevices: [{ accountId: "acct-bob", deviceId: "dev-9" }],
      extraDevices: [],
      staleDevices: [],
    });
  } finally {
    h.close();
  }
});

Deno.test("proto: Receive streams oneof events both ways with uint64 and int64 intact", async () => {
  const h = await harness();
  try {
    const stream = h.messaging.receive(bearer("token-4"));
    const events: ReceiveResponse[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      stream.on("data", (event: ReceiveResponse) => {
        events.push(event);
        if (event.event?.$case === "queueDrained") {
          stream.write({ kind: { $case: "ping", value: { nonce: MAX_SAFE_NONCE } } });
        } else if (event.event?.$case === "pong") {
          stream.write({ kind: { $case: "ack", value: { envelopeIds: ["env-0"] } } });
        }
      });
      stream.on("error", reject);
      stream.on("end", () => resolve());
    });
    await ended;
    stream.end();

    assertEquals(plain(events), [
      {
        event: {
          $case: "envelope",
          value: {
            id: "env-0",
            seq: SEQ,
            sender: { accountId: "acct-alice", deviceId: "dev-a" },
            clientMessageId: "m-1",
            type: EnvelopeType.ENVELOPE_TYPE_MLS_PRIVATE_MESSAGE,
            content: bytes(0, 1, 2, 254, 255),
            serverTimestampMs: SERVER_TIME_MS,
            ephemeral: false,
            groupId: bytes(0xaa, 0xbb),
          },
        },
      },
      { event: { $case: "queueDrained", value: { backlogCount: 1 } } },
      { event: { $case: "pong", value: { nonce: MAX_SAFE_NONCE, serverTimeMs: SERVER_TIME_MS } } },
      { event: { $case: "closed", value: { reason: ClosedReason.CLOSED_REASON_REPLACED } } },
    ]);
    assertEquals(h.seen.receive, [
      { kind: { $case: "ping", value: { nonce: MAX_SAFE_NONCE } } },
      { kind: { $case: "ack", value: { envelopeIds: ["env-0"] } } },
    ]);
  } finally {
    h.close();
  }
});

Deno.test("proto: SendStream answers carry uint64 request ids and oneof failures with bytes", async () => {
  const h = await harness();
  try {
    const stream = h.messaging.sendStream(bearer("token-5"));
    const answers: SendStreamResponse[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      stream.on("data", (answer: SendStreamResponse) => answers.push(answer));
      stream.on("error", reject);
      stream.on("end", () => resolve());
    });
    stream.write({
      requestId: Number.MAX_SAFE_INTEGER,
      send: {
        recipientAccountId: "acct-bob",
        clientMessageId: "m-9",
        envelopes: [],
        syncEnvelopes: [],
        ephemeral: false,
        silent: true,
        ttlSeconds: 0,
        urgent: false,
      },
    });
    stream.end();
    await ended;
    assertEquals(plain(answers), [{
      requestId: Number.MAX_SAFE_INTEGER,
      result: {
        $case: "failed",
        value: {
          code: grpc.status.FAILED_PRECONDITION,
          reason: ErrorReason.ERROR_REASON_STALE_DEVICES,
          message: "stale: m-9",
          detail: bytes(0, 255),
          retryAfterMs: 0,
        },
      },
    }]);
  } finally {
    h.close();
  }
});

Deno.test("proto task: staleFiles reports changed, missing and extra files in path order", () => {
  const t = new TextEncoder();
  const generated = new Map([
    ["guardyn/v1/a.ts", t.encode("same")],
    ["guardyn/v1/b.ts", t.encode("new")],
    ["guardyn/v1/c.ts", t.encode("added")],
  ]);
  const committed = new Map([
    ["guardyn/v1/a.ts", t.encode("same")],
    ["guardyn/v1/b.ts", t.encode("old")],
    ["guardyn/v1/z.ts", t.encode("removed")],
  ]);
  const stale = staleFiles(generated, committed);
  assertEquals(stale, [
    { path: "guardyn/v1/b.ts", problem: "changed" },
    { path: "guardyn/v1/c.ts", problem: "missing" },
    { path: "guardyn/v1/z.ts", problem: "extra" },
  ]);
  assertEquals(staleFiles(generated, generated), []);
  const report = staleReport(stale);
  assert(report.includes("deno task proto"));
  assert(report.includes("changed proto/gen/guardyn/v1/b.ts"));
});

Deno.test("proto task: tools must be pinned to exact npm versions in deno.json", () => {
  assertEquals(
    toolSpecifiers({
      imports: { "ts-proto": "npm:ts-proto@2.18.0", "@bufbuild/buf": "npm:@bufbuild/buf@1.74.0" },
    }),
    { buf: "npm:@bufbuild/buf@1.74.0", tsProto: "npm:ts-proto@2.18.0" },
  );
  assertThrows(
    () =>
      toolSpecifiers({
        imports: {
          "ts-proto": "npm:ts-proto@^2.18.0",
          "@bufbuild/buf": "npm:@bufbuild/buf@1.74.0",
        },
      }),
    /ts-proto/,
  );
  assertThrows(() => toolSpecifiers({ imports: { "ts-proto": "npm:ts-proto@2.18.0" } }), /buf/);
  assertThrows(() => toolSpecifiers(null), /exact npm version/);
});
