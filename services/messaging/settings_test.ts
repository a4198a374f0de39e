import { assert, assertEquals } from "../../tests/assert.ts";
import { settingsFromEnv } from "../kit/settings.ts";
import { ConfigError } from "../platform/env.ts";
import { messagingModule } from "./module.ts";

Deno.test("messaging settings: defaults", () => {
  const messaging = settingsFromEnv(messagingModule, {});
  assertEquals(messaging, {
    envelopeMaxBytes: 96 * 1024,
    maxEnvelopesPerRequest: 10,
    mailboxTtlSeconds: 30 * 86_400,
    idempotencyWindowSeconds: 86_400,
    sendBurst: 50,
    sendPerSecond: 20,
    pollIntervalMs: 15_000,
    purgeIntervalMs: 60_000,
    maxStreamsPerInstance: 50_000,
    streamOpensPerMinute: 30,
    directoryCacheMs: 1_000,
    maxConcurrentSends: 1_000,
    maxSendStreamsPerDevice: 2,
    maxSendStreamsPerInstance: 10_000,
  });
});

Deno.test("messaging settings: parsed from the environment and validated together", () => {
  const messaging = settingsFromEnv(messagingModule, {
    MESSAGING_ENVELOPE_MAX_BYTES: "2048",
    MESSAGING_MAILBOX_TTL_SECONDS: "3600",
    MESSAGING_POLL_INTERVAL_MS: "500",
  });
  assertEquals(
    [messaging.envelopeMaxBytes, messaging.mailboxTtlSeconds, messaging.pollIntervalMs],
    [2048, 3600, 500],
  );
  try {
    settingsFromEnv(messagingModule, {
      MESSAGING_ENVELOPE_MAX_BYTES: "999999999",
      MESSAGING_POLL_INTERVAL_MS: "fast",
      MAX_DEVICES_PER_ACCOUNT: "20",
    });
    throw new Error("expected a ConfigError");
  } catch (error) {
    assert(error instanceof ConfigError, String(error));
    const text = error.message;
    assert(text.includes("MESSAGING_ENVELOPE_MAX_BYTES"), text);
    assert(text.includes("MESSAGING_POLL_INTERVAL_MS"), text);
    assert(text.includes("must be at least MAX_DEVICES_PER_ACCOUNT=20"), text);
  }
});
