import { assertEquals } from "../tests/assert.ts";
import {
  connectCodeName,
  connectCodeOf,
  connectEndStream,
  connectHttpStatus,
  frame,
  FrameError,
  FrameReader,
  grpcWebTrailer,
  parseGrpcWebTrailer,
  percentDecode,
  percentEncode,
  protocolOf,
  requestedTimeoutMs,
} from "./web_wire.ts";

Deno.test("web wire: frames split anywhere across chunks come out whole and in order", () => {
  const bytes = new Uint8Array([
    ...frame(0, new Uint8Array([1, 2, 3])),
    ...frame(0, new Uint8Array(0)),
    ...frame(0x80, new Uint8Array([9])),
  ]);
  for (let cut = 0; cut <= bytes.length; cut++) {
    const reader = new FrameReader(1024);
    const frames = [...reader.push(bytes.slice(0, cut)), ...reader.push(bytes.slice(cut))];
    assertEquals(frames.map((f) => [f.flags, [...f.payload]]), [[0, [1, 2, 3]], [0, []], [0x80, [
      9,
    ]]]);
    assertEquals(reader.pendingBytes, 0);
  }
  const truncated = new FrameReader(1024);
  truncated.push(frame(0, new Uint8Array(10)).slice(0, 8));
  assertEquals(truncated.pendingBytes, 8);
});

Deno.test("web wire: a frame over the limit is refused from its header", () => {
  const reader = new FrameReader(16);
  const header = new Uint8Array([0, 0x40, 0, 0, 0]); // 1 GiB declared, nothing sent
  let refused: unknown;
  try {
    reader.push(header);
  } catch (error) {
    refused = error;
  }
  assertEquals(refused instanceof FrameError && refused.tooLarge, true);
});

Deno.test("web wire: gRPC-Web trailers round-trip status, message and metadata", () => {
  const status = {
    code: 9,
    message: "stale device list: 100% sure ✓",
    metadata: [
      ["guardyn-error-reason", "STALE_DEVICES"],
      ["guardyn-error-detail-bin", new Uint8Array([0, 255, 7])],
    ] as Array<[string, string | Uint8Array]>,
  };
  const trailer = grpcWebTrailer(status);
  assertEquals(trailer[0], 0x80);
  const parsed = parseGrpcWebTrailer(trailer.subarray(5));
  assertEquals(parsed.code, 9);
  assertEquals(parsed.message, status.message);
  assertEquals(parsed.metadata[0], ["guardyn-error-reason", "STALE_DEVICES"]);
  assertEquals([...(parsed.metadata[1]![1] as Uint8Array)], [0, 255, 7]);
  assertEquals(percentDecode(percentEncode("a%b\nc")), "a%b\nc");
});

Deno.test("web wire: Connect codes, HTTP statuses and the end-of-stream envelope", () => {
  assertEquals([connectCodeName(3), connectCodeName(16), connectCodeName(99)], [
    "invalid_argument",
    "unauthenticated",
    "unknown",
  ]);
  assertEquals([connectCodeOf("resource_exhausted"), connectCodeOf("nonsense")], [8, 2]);
  assertEquals([connectHttpStatus(3), connectHttpStatus(8), connectHttpStatus(14)], [
    400,
    429,
    503,
  ]);
  const end = connectEndStream({ code: 5, message: "gone", metadata: [["k", "v"]] });
  assertEquals(end[0], 0x02);
  assertEquals(JSON.parse(new TextDecoder().decode(end.subarray(5))), {
    error: { code: "not_found", message: "gone" },
    metadata: { k: ["v"] },
  });
  const ok = connectEndStream({ code: 0, message: "", metadata: [] });
  assertEquals(JSON.parse(new TextDecoder().decode(ok.subarray(5))), { metadata: {} });
});

Deno.test("web wire: content types choose the protocol; timeouts parse both headers", () => {
  assertEquals(protocolOf("application/grpc-web+proto", true), { protocol: "grpc-web" });
  assertEquals(protocolOf("application/grpc-web", false), { protocol: "grpc-web" });
  assertEquals(protocolOf("application/proto", false), { protocol: "connect-unary" });
  assertEquals(protocolOf("application/connect+proto", true), { protocol: "connect-stream" });
  for (const refused of ["application/json", "application/grpc-web-text", null]) {
    assertEquals("refused" in protocolOf(refused, false), true, String(refused));
  }
  assertEquals("refused" in protocolOf("application/proto", true), true);
  const timeout = (name: string, value: string) =>
    requestedTimeoutMs(new Headers({ [name]: value }));
  assertEquals(timeout("grpc-timeout", "250m"), 250);
  assertEquals(timeout("grpc-timeout", "2S"), 2_000);
  assertEquals(timeout("grpc-timeout", "1H"), 3_600_000);
  assertEquals(timeout("grpc-timeout", "abc"), undefined);
  assertEquals(timeout("connect-timeout-ms", "1500"), 1_500);
  assertEquals(requestedTimeoutMs(new Headers()), undefined);
});

Deno.test("web wire: frames split at every size come out whole, in order, nothing left", () => {
  const payloads = [0, 1, 4, 5, 6, 1000, 70_000].map((n) =>
    new Uint8Array(n).map((_, i) => (i * 31 + n) & 0xff)
  );
  const stream = new Uint8Array(payloads.reduce((n, p) => n + 5 + p.length, 0));
  let at = 0;
  for (const p of payloads) {
    stream.set(frame(p.length % 2 === 0 ? 0 : 0x80, p), at);
    at += 5 + p.length;
  }
  for (const piece of [1, 2, 3, 5, 7, 4096, 16_384, stream.length]) {
    const reader = new FrameReader(100_000);
    const out: { flags: number; payload: Uint8Array }[] = [];
    for (let i = 0; i < stream.length; i += piece) {
      out.push(...reader.push(stream.subarray(i, i + piece)));
    }
    assertEquals(out.map((f) => f.payload), payloads, `pieces of ${piece}`);
    assertEquals(out.map((f) => f.flags), payloads.map((p) => p.length % 2 === 0 ? 0 : 0x80));
    assertEquals(reader.pendingBytes, 0);
  }
});
