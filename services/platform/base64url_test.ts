import { assertEquals } from "../../tests/assert.ts";
import { fromBase64Url, randomBase64Url, toBase64Url } from "./base64url.ts";

Deno.test("base64url: no padding, URL-safe alphabet, round trip, refusals", () => {
  const bytes = Uint8Array.from([0xfb, 0xff, 0xbf, 0x00, 0x01]);
  assertEquals(toBase64Url(bytes), "-_-_AAE");
  assertEquals(fromBase64Url("-_-_AAE"), bytes);
  assertEquals(fromBase64Url("+/+/AAE"), undefined);
  assertEquals(fromBase64Url("a"), undefined);
  const id = randomBase64Url();
  assertEquals([id.length, /^[A-Za-z0-9_-]+$/.test(id)], [22, true]);
  assertEquals(fromBase64Url(id)?.length, 16);
});
