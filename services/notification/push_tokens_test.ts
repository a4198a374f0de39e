import { assertEquals } from "../../tests/assert.ts";
import { normalizePushToken, parseSubscription } from "./push_tokens.ts";

const P256DH = "BN" + "A".repeat(85); // 65 bytes starting 0x04 in base64url
const AUTH = "A".repeat(22); // 16 bytes

Deno.test("push tokens: subscriptions are kept in one canonical form, extras dropped", () => {
  const browser = JSON.stringify({
    endpoint: "https://push.example.test/abc",
    expirationTime: null,
    keys: { auth: AUTH, p256dh: P256DH },
  });
  const stored = normalizePushToken("web-push", browser);
  assertEquals(stored, {
    token:
      `{"endpoint":"https://push.example.test/abc","keys":{"p256dh":"${P256DH}","auth":"${AUTH}"}}`,
  });
  assertEquals(
    parseSubscription((stored as { token: string }).token).endpoint,
    "https://push.example.test/abc",
  );
  // A UnifiedPush endpoint alone, or with keys (Web Push to the distributor).
  assertEquals(normalizePushToken("unified-push", "https://ntfy.test/up1"), {
    token: '{"endpoint":"https://ntfy.test/up1"}',
  });
  assertEquals(normalizePushToken("apns", "AB".repeat(32)), { token: "ab".repeat(32) });
  assertEquals(normalizePushToken("fcm", "fcm:token_1-x"), { token: "fcm:token_1-x" });
});

Deno.test("push tokens: what is refused says why", () => {
  const refused = (platform: Parameters<typeof normalizePushToken>[0], token: string) =>
    (normalizePushToken(platform, token) as { refused: string }).refused;
  assertEquals(refused("apns", "xyz"), "an APNs device token is 64..200 hex digits");
  assertEquals(refused("fcm", "a b"), "an FCM registration token has only [A-Za-z0-9:_-]");
  assertEquals(refused("web-push", "{nope"), "the subscription is not JSON");
  assertEquals(
    refused("web-push", '{"endpoint":"https://user:pw@push.test/1","keys":{}}'),
    "endpoint must be an https URL of at most 2048 characters",
  );
  assertEquals(
    refused(
      "web-push",
      `{"endpoint":"https://push.test/1","keys":{"p256dh":"${P256DH}","auth":"AA"}}`,
    ),
    "keys.auth must be 16 bytes (base64url)",
  );
});
