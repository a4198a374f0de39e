import { assert, assertEquals, captureRejection } from "../../tests/assert.ts";
import * as jose from "jose";
import { GuardynError } from "./errors.ts";
import {
  generateTokenKeyFile,
  importTokenKeys,
  jwtAuthenticator,
  TokenIssuer,
  type TokenKeyFile,
} from "./tokens.ts";

const ISSUER = "api.example.test";
const device = { accountId: "acct-1", deviceId: "dev-1" };

async function setup(now = () => Date.now(), revoked = new Set<string>()) {
  const file = await generateTokenKeyFile();
  const keys = await importTokenKeys(file);
  const issuer = new TokenIssuer(keys, ISSUER, 900, now);
  const auth = jwtAuthenticator({
    keys,
    issuer: ISSUER,
    now,
    deviceStatus: (a, d) => Promise.resolve(revoked.has(`${a}/${d}`) ? "revoked" : "active"),
  });
  return { file, keys, issuer, auth };
}

async function reason(promise: Promise<unknown>): Promise<string> {
  const error = await captureRejection(promise);
  assert(error instanceof GuardynError);
  return error.reason;
}

Deno.test("tokens: an issued token verifies to its account and device", async () => {
  const { issuer, auth } = await setup();
  const { token, expiresAtMs } = await issuer.issue(device);
  assertEquals(await auth.verify(token), device);
  assert(expiresAtMs > Date.now() + 890_000 && expiresAtMs <= Date.now() + 900_000);
});

Deno.test("tokens: expired, tampered, foreign-key, wrong-issuer and revoked tokens are refused", async () => {
  let now = Date.now();
  const revoked = new Set<string>();
  const { issuer, auth } = await setup(() => now, revoked);
  const { token } = await issuer.issue(device);

  const [header, payload, signature] = token.split(".") as [string, string, string];
  const forged = jose.base64url.encode(JSON.stringify({
    ...JSON.parse(new TextDecoder().decode(jose.base64url.decode(payload))),
    sub: "someone-else",
  }));
  assertEquals(await reason(auth.verify(`${header}.${forged}.${signature}`)), "TOKEN_INVALID");
  assertEquals(await reason(auth.verify("not.a.jwt")), "TOKEN_INVALID");

  const other = await setup(() => now);
  const foreign = await other.issuer.issue(device);
  assertEquals(await reason(auth.verify(foreign.token)), "TOKEN_INVALID");

  const wrongIssuer = new TokenIssuer((await setup()).keys, "api.evil.test", 900);
  assertEquals(await reason(auth.verify((await wrongIssuer.issue(device)).token)), "TOKEN_INVALID");

  revoked.add("acct-1/dev-1");
  assertEquals(await reason(auth.verify(token)), "DEVICE_REVOKED");
  revoked.clear();

  now += 901_000;
  assertEquals(await reason(auth.verify(token)), "TOKEN_EXPIRED");
});

Deno.test("tokens: rotation keeps old tokens valid while new ones use the new key", async () => {
  const first = await generateTokenKeyFile();
  const second = await generateTokenKeyFile();
  const oldIssuer = new TokenIssuer(await importTokenKeys(first), ISSUER, 900);
  const oldToken = (await oldIssuer.issue(device)).token;
  const rotated: TokenKeyFile = { active: second.active, keys: [...second.keys, ...first.keys] };
  const keys = await importTokenKeys(rotated);
  const auth = jwtAuthenticator({
    keys,
    issuer: ISSUER,
    deviceStatus: () => Promise.resolve("active"),
  });
  assertEquals(await auth.verify(oldToken), device);
  const newToken = (await new TokenIssuer(keys, ISSUER, 900).issue(device)).token;
  assertEquals(jose.decodeProtectedHeader(newToken).kid, second.active);
  assertEquals(await auth.verify(newToken), device);
});

Deno.test("tokens: key files are validated", async () => {
  const file = await generateTokenKeyFile();
  await captureRejection(importTokenKeys({ active: "nope", keys: file.keys }));
  await captureRejection(importTokenKeys({ active: file.active, keys: [] }));
  const { d: _d, ...publicOnly } = file.keys[0]!;
  await captureRejection(
    importTokenKeys({ active: file.active, keys: [{ ...publicOnly, kid: file.active }] }),
  );
});
