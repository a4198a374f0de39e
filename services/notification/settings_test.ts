import { assert, assertEquals, captureError } from "../../tests/assert.ts";
import { ConfigError } from "../platform/env.ts";
import { parseConfig } from "../runtime/config.ts";
import { notificationModule } from "./module.ts";
import type { NotificationSettings } from "./settings.ts";

const parse = (env: Record<string, string>) =>
  parseConfig({ DOMAIN: "example.org", ...env }, [notificationModule]).services
    .notification as NotificationSettings;

Deno.test("push settings: defaults, vendor credentials together, clear refusals", () => {
  const defaults = parse({});
  assertEquals(
    [defaults.graceMs, defaults.coalesceMs, defaults.sendTimeoutMs, defaults.allowPrivateEndpoints],
    [1_500, 60_000, 10_000, false],
  );
  assertEquals(defaults.vapidSubject, "mailto:push@example.org");
  assert(defaults.vapidKeyFile?.endsWith("vapid-key.json"), "embedded: the key file beside the db");
  assertEquals(defaults.apns, undefined);
  assertEquals(defaults.fcm, undefined);
  const apns = parse({
    APNS_KEY_FILE: "/keys/apns.p8",
    APNS_KEY_ID: "ABC123DEFG",
    APNS_TEAM_ID: "TEAM123456",
    APNS_TOPIC: "org.example.app",
  }).apns;
  assertEquals(apns?.url, "https://api.push.apple.com");
  const error = captureError(() =>
    parse({
      APNS_KEY_FILE: "/keys/apns.p8",
      VAPID_SUBJECT: "push at example.org",
      VAPID_PRIVATE_KEY: "short",
      PUSH_ALLOW_PRIVATE_ENDPOINTS: "yes",
    })
  );
  assert(error instanceof ConfigError);
  for (
    const expected of [
      "APNS_KEY_FILE, APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC must be set together",
      "VAPID_SUBJECT must be a mailto: or https: URL",
      "VAPID_PRIVATE_KEY must be a P-256 private key",
      'PUSH_ALLOW_PRIVATE_ENDPOINTS="yes" must be one of: false, true',
    ]
  ) {
    assert(
      error.problems.some((p) => p.startsWith(expected)),
      `${expected} in ${error.problems.join("; ")}`,
    );
  }
});
