import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import * as grpc from "@grpc/grpc-js";
import type { Authenticator } from "./auth.ts";
import { GuardynError, invalidArgument, reasonOf, unauthenticated } from "./errors.ts";
import { type CallContext, GrpcServer, requireAuth } from "./grpc_server.ts";
import { memoryLogger } from "./log.ts";
import { RateLimiter } from "./rate_limit.ts";
import { createMetrics } from "./metrics.ts";
import { startWebServer } from "./web_server.ts";
import { webClient } from "../../tests/support/web.ts";

/** A JSON-encoded test service, so the kit is tested without depending on generated code. */
const json = {
  serialize: (value: unknown) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer) => JSON.parse(bytes.toString()),
};
function method<RS extends boolean, SS extends boolean>(
  path: string,
  requestStream: RS,
  responseStream: SS,
) {
  return {
    path: `/guardyn.test.Echo/${path}`,
    requestStream,
    responseStream,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  } as const;
}
const EchoService = {
  whoAmI: method("WhoAmI", false, false),
  publicEcho: method("PublicEcho", false, false),
  fail: method("Fail", false, false),
  crash: method("Crash", false, false),
  limited: method("Limited", false, false),
  slow: method("Slow", false, false),
  count: method("Count", false, true),
  sum: method("Sum", true, false),
  chat: method("Chat", true, true),
} as const;

type Msg = { text?: string; n?: number };

const TOKENS: Record<string, { accountId: string; deviceId: string }> = {
  "good-token": { accountId: "acct1", deviceId: "dev1" },
};
const authenticator: Authenticator = {
  verify(token) {
    const auth = TOKENS[token];
    if (token === "expired-token") {
      return Promise.reject(unauthenticated("TOKEN_EXPIRED", "token expired"));
    }
    return auth
      ? Promise.resolve(auth)
      : Promise.reject(unauthenticated("TOKEN_INVALID", "bad token"));
  },
};

interface Harness {
  client: grpc.Client & Record<string, (...args: unknown[]) => unknown>;
  server: GrpcServer;
  log: ReturnType<typeof memoryLogger>;
  metrics: ReturnType<typeof createMetrics>;
  port: number;
  close(): Promise<void>;
}

/**
 * The kit behind a listener: "web" (gRPC-Web on Deno.serve, what the SDK uses) or "native"
 * (grpc-js in this process, GRPC_LISTENER=in-process). Both run the same wrapped handlers.
 */
async function harness(
  maxRequestBytes = 64 * 1024,
  maxUnaryDeadlineMs = 5_000,
  listener: "web" | "native" = "web",
): Promise<Harness> {
  const log = memoryLogger();
  const metrics = createMetrics();
  const server = new GrpcServer({
    host: "127.0.0.1",
    port: 0,
    limits: {
      maxRequestBytes,
      maxResponseBytes: 1024 * 1024,
      maxUnaryDeadlineMs,
      maxConcurrentStreams: 100,
    },
    log,
    metrics,
    authenticator,
  });
  let slowAbort: unknown;
  server.addService("guardyn.test.Echo", EchoService, {
    whoAmI: (_req: Msg, ctx: CallContext) => Promise.resolve({ text: requireAuth(ctx).accountId }),
    publicEcho: (req: Msg) => Promise.resolve({ text: req.text }),
    fail: () => Promise.reject(invalidArgument("text must not be empty")),
    crash: () => Promise.reject(new Error("database password=hunter2 exploded")),
    limited: () => {
      // A fixed clock: no refill between the two takes, however slow the machine.
      const limiter = new RateLimiter({ burst: 1, perSecond: 0.5 }, undefined, () => 1_000);
      limiter.take("k", "test calls");
      limiter.take("k", "test calls");
      return Promise.resolve({});
    },
    slow: (_req: Msg, ctx: CallContext) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => resolve({ text: "late" }), 10_000);
        ctx.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          slowAbort = ctx.signal.reason;
          resolve({ text: "aborted" });
        });
      }),
    count: async (req: Msg, call: grpc.ServerWritableStream<Msg, Msg>) => {
      for (let i = 0; i < (req.n ?? 0); i++) call.write({ n: i });
      await Promise.resolve();
    },
    sum: (call: grpc.ServerReadableStream<Msg, Msg>) =>
      new Promise((resolve) => {
        let total = 0;
        call.on("data", (m: Msg) => total += m.n ?? 0);
        call.on("end", () => resolve({ n: total }));
      }),
    chat: (call: grpc.ServerDuplexStream<Msg, Msg>, ctx: CallContext) =>
      new Promise<void>((resolve) => {
        call.on("data", (m: Msg) => call.write({ text: `${ctx.auth?.deviceId}:${m.text}` }));
        call.on("end", () => resolve());
        ctx.signal.addEventListener("abort", () => resolve());
      }),
  }, { publicMethods: ["publicEcho"] });
  void slowAbort;
  if (listener === "native") {
    const port = await server.start();
    const Client = grpc.makeGenericClientConstructor(EchoService, "Echo");
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as Harness[
      "client"
    ];
    return {
      client,
      server,
      log,
      metrics,
      port,
      close: async () => {
        client.close();
        await server.shutdown(1_000);
      },
    };
  }
  server.markServing();
  const web = startWebServer({
    host: "127.0.0.1",
    port: 0,
    limits: server.limits,
    log,
    routes: server.routes,
  });
  const client = webClient<Harness["client"]>(EchoService, `127.0.0.1:${web.port}`);
  return {
    client,
    server,
    log,
    metrics,
    port: web.port,
    close: async () => {
      client.close();
      await server.shutdown(1_000);
      await web.close();
    },
  };
}

function meta(token?: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set("authorization", token);
  return metadata;
}

function unary(
  h: Harness,
  name: string,
  request: Msg,
  metadata = meta(),
  options: grpc.CallOptions = {},
): Promise<Msg> {
  return new Promise((resolve, reject) => {
    h.client[name]!(
      request,
      metadata,
      options,
      (error: grpc.ServiceError | null, response: Msg) => {
        if (error) reject(error);
        else resolve(response);
      },
    );
  });
}

async function statusOf(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as grpc.ServiceError;
  }
  throw new Error("expected the call to fail");
}

Deno.test("grpc kit: authenticated call reaches the handler with the auth context", async () => {
  const h = await harness();
  try {
    assertEquals(await unary(h, "whoAmI", {}, meta("Bearer good-token")), { text: "acct1" });
  } finally {
    await h.close();
  }
});

Deno.test("grpc kit: missing, malformed, invalid and expired tokens are UNAUTHENTICATED with a reason", async () => {
  const h = await harness();
  try {
    const cases: [grpc.Metadata, string][] = [
      [meta(), "TOKEN_MISSING"],
      [meta("good-token"), "TOKEN_INVALID"],
      [meta("Basic dXNlcjpwYXNz"), "TOKEN_INVALID"],
      [meta("Bearer bad token"), "TOKEN_INVALID"],
      [meta("Bearer wrong-token"), "TOKEN_INVALID"],
      [meta("Bearer expired-token"), "TOKEN_EXPIRED"],
      [meta("Bearer " + "a".repeat(5000)), "TOKEN_INVALID"],
    ];
    for (const [metadata, reason] of cases) {
      const error = await statusOf(unary(h, "whoAmI", {}, metadata));
      assertEquals(error.code, grpc.status.UNAUTHENTICATED);
      assertEquals(reasonOf(error), reason, `metadata ${JSON.stringify(metadata.getMap())}`);
    }
    // Public methods need no token.
    assertEquals(await unary(h, "publicEcho", { text: "hi" }), { text: "hi" });
  } finally {
    await h.close();
  }
});

Deno.test("grpc kit: domain errors keep their status and reason; unexpected errors hide internals", async () => {
  const h = await harness();
  try {
    const fail = await statusOf(unary(h, "fail", {}, meta("Bearer good-token")));
    assertEquals(fail.code, grpc.status.INVALID_ARGUMENT);
    assertEquals(fail.details, "text must not be empty");
    assertEquals(reasonOf(fail), "INVALID_ARGUMENT");

    const crash = await statusOf(unary(h, "crash", {}, meta("Bearer good-token")));
    assertEquals(crash.code, grpc.status.INTERNAL);
    assertEquals(reasonOf(crash), "INTERNAL");
    assert(!crash.details.includes("hunter2"), "internal details must not reach the client");
    assert(/request id [0-9a-f-]{36}/.test(crash.details));
    assertEquals(
      crash.metadata.get("x-request-id")[0],
      /request id ([0-9a-f-]{36})/.exec(crash.details)?.[1],
    );
    const logged = h.log.lines.find((line) => line.msg === "call failed");
    assert(logged, "internal errors are logged server side");
  } finally {
    await h.close();
  }
});

Deno.test("grpc kit: rate-limited calls carry a retry hint in the trailers", async () => {
  const h = await harness();
  try {
    const error = await statusOf(unary(h, "limited", {}, meta("Bearer good-token")));
    assertEquals([error.code, reasonOf(error)], [grpc.status.RESOURCE_EXHAUSTED, "RATE_LIMITED"]);
    assertEquals(error.metadata.get("guardyn-retry-after-ms"), ["2000"]);
  } finally {
    await h.close();
  }
});

Deno.test("grpc kit: oversized requests get RESOURCE_EXHAUSTED and never reach the handler", async () => {
  const h = await harness(1024);
  try {
    const error = await statusOf(unary(h, "publicEcho", { text: "x".repeat(4096) }));
    assertEquals(error.code, grpc.status.RESOURCE_EXHAUSTED);
    assertEquals(await unary(h, "publicEcho", { text: "small" }), { text: "small" });
  } finally {
    await h.close();
  }
});

Deno.test("grpc kit: unary calls are cut at the server's maximum deadline", async () => {
  const h = await harness(64 * 1024, 200);
  try {
    const error = await statusOf(unary(h, "slow", {}, meta("Bearer good-token")));
    assertEquals(error.code, grpc.status.DEADLINE_EXCEEDED);
    assertEquals(reasonOf(error), "DEADLINE_EXCEEDED");
  } finally {
    await h.close();
  }
});

Deno.test("grpc kit: server, client and bidirectional streams work through the kit", async () => {
  const h = await harness();
  try {
    const counted: number[] = await new Promise((resolve, reject) => {
      const got: number[] = [];
      const stream = h.client.count!(
        { n: 5 },
        meta("Bearer good-token"),
      ) as grpc.ClientReadableStream<Msg>;
      stream.on("data", (m: Msg) => got.push(m.n ?? -1));
      stream.on("error", reject);
      stream.on("end", () => resolve(got));
    });
    assertEquals(counted, [0, 1, 2, 3, 4]);

    const sum: Msg = await new Promise((resolve, reject) => {
      const stream = h.client.sum!(
        meta("Bearer good-token"),
        (e: grpc.ServiceError | null, r: Msg) => e ? reject(e) : resolve(r),
      ) as grpc.ClientWritableStream<Msg>;
      for (const n of [1, 2, 3]) stream.write({ n });
      stream.end();
    });
    assertEquals(sum, { n: 6 });

    const echoed: string[] = await new Promise((resolve, reject) => {
      const got: string[] = [];
      const stream = h.client.chat!(meta("Bearer good-token")) as grpc.ClientDuplexStream<Msg, Msg>;
      stream.on("data", (m: Msg) => {
        got.push(m.text ?? "");
        if (got.length === 2) stream.end();
      });
      stream.on("error", reject);
      stream.on("end", () => resolve(got));
      stream.write({ text: "a" });
      stream.write({ text: "b" });
    });
    assertEquals(echoed, ["dev1:a", "dev1:b"]);

    // Streams are authenticated too.
    const error = await new Promise<grpc.ServiceError>((resolve) => {
      const stream = h.client.count!({ n: 1 }, meta()) as grpc.ClientReadableStream<Msg>;
      stream.on("data", () => {});
      stream.on("error", resolve);
    });
    assertEquals(error.code, grpc.status.UNAUTHENTICATED);
    assertEquals(reasonOf(error), "TOKEN_MISSING");
  } finally {
    await h.close();
  }
});

Deno.test("grpc kit: standard health service reports SERVING, then NOT_SERVING while draining", async () => {
  const h = await harness();
  const healthMethod = {
    path: "/grpc.health.v1.Health/Check",
    requestStream: false,
    responseStream: false,
    // HealthCheckRequest{service=1:string}; HealthCheckResponse{status=1:enum}.
    requestSerialize: (service: string) => {
      const bytes = new TextEncoder().encode(service);
      return Buffer.from([0x0a, bytes.length, ...bytes]);
    },
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => (b.length >= 2 ? b[1] : 0),
  } as const;
  const health = webClient<Record<string, (...args: unknown[]) => unknown>>(
    { check: healthMethod },
    `127.0.0.1:${h.port}`,
  );
  const check = (service: string) =>
    new Promise<number>((resolve, reject) =>
      health.check!(
        service,
        (e: grpc.ServiceError | null, status: number) => e ? reject(e) : resolve(status),
      )
    );
  try {
    assertEquals(await check(""), 1); // SERVING
    assertEquals(await check("guardyn.test.Echo"), 1);
    const unknown = await statusOf(check("guardyn.test.Nope"));
    assertEquals(unknown.code, grpc.status.NOT_FOUND);
  } finally {
    health.close();
    await h.close();
  }
});

Deno.test("grpc kit: shutdown cancels open streams and refuses new calls", async () => {
  const h = await harness();
  const stream = h.client.chat!(meta("Bearer good-token")) as grpc.ClientDuplexStream<Msg, Msg>;
  const ended = new Promise<string>((resolve) => {
    stream.on("data", () => {});
    stream.on("error", (e: grpc.ServiceError) => resolve(`error:${e.code}`));
    stream.on("end", () => resolve("end"));
  });
  stream.write({ text: "hello" });
  await new Promise((resolve) => setTimeout(resolve, 100));
  await h.server.shutdown(2_000);
  const outcome = await ended;
  assert(outcome === "end" || outcome.startsWith("error:"), outcome);
  await assertRejects(() => unary(h, "publicEcho", { text: "late" }));
  await h.close();
});

Deno.test("grpc kit (native, in-process): unary, streams and health through grpc-js", async () => {
  const h = await harness(64 * 1024, 5_000, "native");
  try {
    assertEquals(await unary(h, "whoAmI", {}, meta("Bearer good-token")), { text: "acct1" });
    const error = await statusOf(unary(h, "fail", {}, meta("Bearer good-token")));
    assertEquals([error.code, reasonOf(error)], [grpc.status.INVALID_ARGUMENT, "INVALID_ARGUMENT"]);
    const counted: number[] = await new Promise((resolve, reject) => {
      const got: number[] = [];
      const stream = h.client.count!(
        { n: 3 },
        meta("Bearer good-token"),
      ) as grpc.ClientReadableStream<
        Msg
      >;
      stream.on("data", (m: Msg) => got.push(m.n ?? -1));
      stream.on("error", reject);
      stream.on("end", () => resolve(got));
    });
    assertEquals(counted, [0, 1, 2]);
  } finally {
    await h.close();
  }
});

Deno.test("grpc kit: metrics count calls by method and status code", async () => {
  const h = await harness();
  try {
    await unary(h, "publicEcho", { text: "x" });
    await statusOf(unary(h, "fail", {}, meta("Bearer good-token")));
    const text = await h.metrics.registry.metrics();
    assert(
      text.includes(
        'guardyn_grpc_server_handled_total{service="guardyn.test.Echo",method="publicEcho",code="OK"} 1',
      ),
    );
    assert(text.includes('method="fail",code="INVALID_ARGUMENT"} 1'));
  } finally {
    await h.close();
  }
});

Deno.test("grpc kit: GuardynError carries code and reason", () => {
  const error = new GuardynError(grpc.status.NOT_FOUND, "NOT_FOUND", "no such device");
  assertEquals(error.code, grpc.status.NOT_FOUND);
  assertEquals(error.reason, "NOT_FOUND");
});

/** Splits a Connect / gRPC-Web response body into [flags, text] frames. */
function framesOf(bytes: Uint8Array): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  let offset = 0;
  while (offset + 5 <= bytes.length) {
    const length = new DataView(bytes.buffer, bytes.byteOffset + offset + 1, 4).getUint32(0);
    out.push([
      bytes[offset]!,
      new TextDecoder().decode(bytes.subarray(offset + 5, offset + 5 + length)),
    ]);
    offset += 5 + length;
  }
  return out;
}

function enveloped(text: string): Uint8Array<ArrayBuffer> {
  const payload = new TextEncoder().encode(text);
  const out = new Uint8Array(5 + payload.length);
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

Deno.test("web listener: Connect unary sends the bare message; errors are JSON with an HTTP status and the reason", async () => {
  const h = await harness();
  const post = (method: string, body: string, token?: string) =>
    fetch(`http://127.0.0.1:${h.port}/guardyn.test.Echo/${method}`, {
      method: "POST",
      headers: {
        "content-type": "application/proto",
        "connect-protocol-version": "1",
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body,
    });
  try {
    const ok = await post("PublicEcho", JSON.stringify({ text: "hi" }));
    assertEquals([ok.status, ok.headers.get("content-type")], [200, "application/proto"]);
    assertEquals(await ok.json(), { text: "hi" });
    const refused = await post("Fail", "{}", "good-token");
    assertEquals(refused.status, 400);
    assertEquals(refused.headers.get("guardyn-error-reason"), "INVALID_ARGUMENT");
    assertEquals(await refused.json(), {
      code: "invalid_argument",
      message: "text must not be empty",
    });
    const anonymous = await post("WhoAmI", "{}");
    assertEquals([anonymous.status, (await anonymous.json()).code], [401, "unauthenticated"]);
    const unknown = await post("Nope", "{}");
    assertEquals([unknown.status, (await unknown.json()).code], [501, "unimplemented"]);
    const json = await fetch(`http://127.0.0.1:${h.port}/guardyn.test.Echo/PublicEcho`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    assertEquals(json.status, 415);
    await json.body?.cancel();
  } finally {
    await h.close();
  }
});

Deno.test("web listener: server streams over Connect and gRPC-Web, on HTTP/2 and HTTP/1.1", async () => {
  const h = await harness();
  const http1 = Deno.createHttpClient({ http1: true, http2: false });
  const http2 = Deno.createHttpClient({ http1: false, http2: true });
  try {
    for (
      const [protocol, contentType] of [
        ["connect", "application/connect+proto"],
        ["grpc-web", "application/grpc-web+proto"],
      ] as const
    ) {
      for (const client of [http1, http2]) {
        const response = await fetch(`http://127.0.0.1:${h.port}/guardyn.test.Echo/Count`, {
          method: "POST",
          headers: { "content-type": contentType, authorization: "Bearer good-token" },
          body: enveloped(JSON.stringify({ n: 3 })),
          client,
        } as RequestInit);
        assertEquals(response.headers.get("content-type"), contentType);
        const frames = framesOf(new Uint8Array(await response.arrayBuffer()));
        assertEquals(frames.slice(0, 3), [[0, '{"n":0}'], [0, '{"n":1}'], [0, '{"n":2}']]);
        const [flags, end] = frames[3]!;
        if (protocol === "connect") assertEquals([flags, JSON.parse(end)], [2, { metadata: {} }]);
        else assertEquals([flags, end], [0x80, "grpc-status:0\r\n"]);
      }
    }
    // A refused stream carries its status in the body.
    const anonymous = await fetch(`http://127.0.0.1:${h.port}/guardyn.test.Echo/Count`, {
      method: "POST",
      headers: { "content-type": "application/connect+proto" },
      body: enveloped("{}"),
      client: http2,
    } as RequestInit);
    const [flags, end] = framesOf(new Uint8Array(await anonymous.arrayBuffer()))[0]!;
    assertEquals(flags, 2);
    assertEquals(JSON.parse(end).error.code, "unauthenticated");
    assertEquals(JSON.parse(end).metadata["guardyn-error-reason"], ["TOKEN_MISSING"]);
  } finally {
    http1.close();
    http2.close();
    await h.close();
  }
});

Deno.test("web listener: a browser on an allowed origin gets CORS headers, others none", async () => {
  const h = await harness();
  const web = startWebServer({
    host: "127.0.0.1",
    port: 0,
    limits: h.server.limits,
    log: h.log,
    routes: h.server.routes,
    corsOrigins: ["https://app.example.org"],
  });
  const url = `http://127.0.0.1:${web.port}/guardyn.test.Echo/PublicEcho`;
  try {
    const preflight = await fetch(url, {
      method: "OPTIONS",
      headers: { origin: "https://app.example.org", "access-control-request-method": "POST" },
    });
    assertEquals(preflight.status, 204);
    const call = (origin: string) =>
      fetch(url, {
        method: "POST",
        headers: { origin, "content-type": "application/proto" },
        body: JSON.stringify({ text: "hi" }),
      });
    const allowed = await call("https://app.example.org");
    assertEquals(allowed.headers.get("access-control-allow-origin"), "https://app.example.org");
    assertEquals(await allowed.json(), { text: "hi" });
    const other = await call("https://evil.example");
    assertEquals(other.headers.get("access-control-allow-origin"), null);
    await other.body?.cancel();
  } finally {
    await web.close();
    await h.close();
  }
});

Deno.test("web listener: a request whose message never arrives ends at the deadline", async () => {
  const h = await harness(64 * 1024, 200);
  const client = Deno.createHttpClient({ http2: true, http1: false });
  try {
    // Headers, then a body that never ends: the client holds the call open, the server does not.
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
    const response = await fetch(`http://127.0.0.1:${h.port}/guardyn.test.Echo/PublicEcho`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body,
      duplex: "half",
      client,
    } as RequestInit);
    const text = new TextDecoder().decode(await response.arrayBuffer());
    assert(/grpc-status:4/.test(text), text);
    assert(/guardyn-error-reason:DEADLINE_EXCEEDED/.test(text), text);
    // The test's client then resets its side, so the listener can close without waiting.
    controller.error(new Error("done"));
  } finally {
    client.close();
    await h.close();
  }
});
