import { base64url } from "jose";
import { assert, assertEquals, captureError } from "../../tests/assert.ts";
import { GuardynError } from "../platform/errors.ts";
import {
  checkPasswordStrength,
  checkUserSearch,
  lastSeenDay,
  parseProvisioningToken,
  provisioningToken,
  SEARCH_PAGE_MAX,
} from "./account_rules.ts";

function reason(fn: () => unknown): [string, string] {
  const error = captureError(fn);
  assert(error instanceof GuardynError, String(error));
  return [error.reason, error.message];
}

Deno.test("account rules: a weak password is WEAK_PASSWORD with the limits", () => {
  checkPasswordStrength("long enough");
  assertEquals(reason(() => checkPasswordStrength("short")), [
    "WEAK_PASSWORD",
    "password must be 8 to 256 characters",
  ]);
});

Deno.test("account rules: searches are bounded by prefix, page size and their own page token", () => {
  assertEquals(checkUserSearch(" Alice ", undefined), { prefix: "alice", pageSize: 20, after: "" });
  assertEquals(checkUserSearch("alice", { pageSize: 5, pageToken: "alice_b" }), {
    prefix: "alice",
    pageSize: 5,
    after: "alice_b",
  });
  assertEquals(
    reason(() => checkUserSearch("ali", undefined))[1],
    "prefix must be 5..32 characters of [a-z0-9_]",
  );
  assertEquals(
    reason(() => checkUserSearch("alice", { pageSize: SEARCH_PAGE_MAX + 1, pageToken: "" }))[1],
    `page.page_size must be 1..${SEARCH_PAGE_MAX}`,
  );
  assertEquals(
    reason(() => checkUserSearch("alice", { pageSize: 5, pageToken: "bob" }))[1],
    "page.page_token does not belong to this search",
  );
});

Deno.test("account rules: provisioning tokens round trip and malformed ones are refused", () => {
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const token = provisioningToken("session-1", secret);
  const parsed = parseProvisioningToken(token);
  assertEquals(parsed.sessionId, "session-1");
  assertEquals([...parsed.secret], [...secret]);
  for (const bad of ["", "session-1", ".abc", "bad id!.abc", `s.${"a".repeat(600)}`, "s.%%%"]) {
    assertEquals(reason(() => parseProvisioningToken(bad))[0], "INVALID_ARGUMENT", bad);
  }
  assertEquals(base64url.encode(parsed.secret), token.split(".")[1]);
});

Deno.test("account rules: a device list shows the day it was last seen, not the time", () => {
  const day = 86_400_000;
  assertEquals(lastSeenDay(20 * day + 12_345), 20 * day);
  assertEquals(lastSeenDay(20 * day), 20 * day);
});
