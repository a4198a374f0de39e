/**
 * APNs sender (token-based authentication): an ES256 JWT (`kid` = key id, `iss` = team id),
 * reused for 50 minutes as Apple asks, and one HTTP/2 POST per wake to
 * `/3/device/<token>`. The payload is a mutable alert with a fixed localization key and no
 * content: the app's notification service extension fetches and decrypts the mail itself.
 * Calls use the same request with a short expiration.
 */

import * as jose from "jose";
import {
  outcomeOfStatus,
  type PushSender,
  type SendOutcome,
  type Wake,
  WAKE_TOPIC,
  wakeTtlSeconds,
} from "./wake.ts";

export interface ApnsOptions {
  /** The .p8 signing key (PKCS#8 PEM). */
  privateKeyPem: string;
  keyId: string;
  teamId: string;
  /** The app's bundle id (apns-topic). */
  topic: string;
  /** https://api.push.apple.com, or the sandbox. */
  url: string;
  timeoutMs: number;
  now?: () => number;
  fetch?: typeof fetch;
}

/** What an APNs wake says: nothing but a localization key the app shows as "New message". */
export const APNS_WAKE_PAYLOAD = {
  aps: { "mutable-content": 1, alert: { "loc-key": "GUARDYN_WAKE" } },
  guardyn: { v: 1, type: "wake" },
};

const JWT_REUSE_MS = 50 * 60_000;
/** Reasons APNs gives for a token that will never work again. */
const DEAD_TOKEN_REASONS = new Set(["BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic"]);

export async function apnsSender(options: ApnsOptions): Promise<PushSender> {
  const key = await jose.importPKCS8(options.privateKeyPem, "ES256");
  const now = options.now ?? Date.now;
  const doFetch = options.fetch ?? fetch;
  let jwt: { value: string; madeAtMs: number } | undefined;
  const bearer = async () => {
    if (!jwt || now() - jwt.madeAtMs > JWT_REUSE_MS) {
      const value = await new jose.SignJWT({})
        .setProtectedHeader({ alg: "ES256", kid: options.keyId })
        .setIssuer(options.teamId)
        .setIssuedAt(Math.floor(now() / 1000))
        .sign(key);
      jwt = { value, madeAtMs: now() };
    }
    return jwt.value;
  };
  return {
    async send(token: string, wake: Wake): Promise<SendOutcome> {
      try {
        const response = await doFetch(`${options.url}/3/device/${token}`, {
          method: "POST",
          headers: {
            authorization: `bearer ${await bearer()}`,
            "apns-topic": options.topic,
            "apns-push-type": "alert",
            "apns-priority": "10",
            "apns-expiration": String(Math.floor(now() / 1000) + wakeTtlSeconds(wake)),
            "apns-collapse-id": WAKE_TOPIC,
            "content-type": "application/json",
          },
          body: JSON.stringify(APNS_WAKE_PAYLOAD),
          redirect: "manual",
          signal: AbortSignal.timeout(options.timeoutMs),
        });
        const text = await response.text();
        if (response.status === 400 || response.status === 410) {
          const reason = (JSON.parse(text || "{}") as { reason?: string }).reason ?? "";
          if (DEAD_TOKEN_REASONS.has(reason)) return { kind: "gone", status: response.status };
          return { kind: "refused", reason: `HTTP ${response.status} ${reason}` };
        }
        return outcomeOfStatus(response.status);
      } catch (error) {
        if (error instanceof SyntaxError) return { kind: "refused", reason: "unreadable answer" };
        return { kind: "retry", reason: "APNs is unreachable or slow" };
      }
    },
  };
}
