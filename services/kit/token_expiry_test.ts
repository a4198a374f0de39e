import * as grpc from "@grpc/grpc-js";
import { assertEquals } from "../../tests/assert.ts";
import { accessTokenExpiryMs } from "./token_expiry.ts";

const b64url = (value: unknown) =>
  btoa(JSON.stringify(value)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");

function metadata(value?: string): grpc.Metadata {
  const m = new grpc.Metadata();
  if (value !== undefined) m.set("authorization", value);
  return m;
}

Deno.test("token expiry: read from the JWT exp claim, absent when unreadable", () => {
  const token = `${b64url({ alg: "EdDSA" })}.${b64url({ sub: "a", exp: 1_700_000_000 })}.sig`;
  assertEquals(accessTokenExpiryMs(metadata(`Bearer ${token}`)), 1_700_000_000_000);
  assertEquals(accessTokenExpiryMs(metadata()), undefined);
  assertEquals(accessTokenExpiryMs(metadata("Bearer not-a-jwt")), undefined);
  assertEquals(accessTokenExpiryMs(metadata(`Bearer x.${b64url({ exp: "soon" })}.y`)), undefined);
  assertEquals(accessTokenExpiryMs(metadata("Bearer x.%%%.y")), undefined);
});
