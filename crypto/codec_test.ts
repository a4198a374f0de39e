import { assertEquals } from "../tests/assert.ts";
import { expectCode } from "./crypto_test_kit.ts";
import { ByteReader, ByteWriter } from "./codec.ts";

Deno.test("codec: fields round-trip through a writer that grows past its capacity", () => {
  const big = new Uint8Array(1000).fill(7);
  const bytes = new ByteWriter(2).u8(255).u32(0xdeadbeef).u64(2 ** 53 - 1).varBytes(big)
    .bytes(Uint8Array.of(1, 2)).finish();
  assertEquals(bytes.length, 1 + 4 + 8 + 4 + 1000 + 2);
  const reader = new ByteReader(bytes, "test");
  assertEquals(reader.u8(), 255);
  assertEquals(reader.u32(), 0xdeadbeef);
  assertEquals(reader.u64(), 2 ** 53 - 1);
  assertEquals(reader.varBytes(1000), big);
  assertEquals(reader.rest(), Uint8Array.of(1, 2));
  reader.end();
});

Deno.test("codec: out-of-range values and malformed input are refused", () => {
  expectCode(() => new ByteWriter().u8(256), "invalid-argument");
  expectCode(() => new ByteWriter().u32(-1), "invalid-argument");
  expectCode(() => new ByteWriter().u64(2 ** 53), "invalid-argument");
  expectCode(() => new ByteReader(Uint8Array.of(1, 2, 3), "t").u32(), "malformed");
  const long = new ByteWriter().varBytes(new Uint8Array(10)).finish();
  expectCode(() => new ByteReader(long, "t").varBytes(9), "malformed");
  const huge = new ByteWriter().u32(2 ** 21).u32(0).finish();
  expectCode(() => new ByteReader(huge, "t").u64(), "malformed");
  const reader = new ByteReader(Uint8Array.of(1, 2), "t");
  reader.u8();
  expectCode(() => reader.end(), "malformed");
});
