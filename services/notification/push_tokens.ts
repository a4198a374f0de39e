/**
 * What a push token must look like per platform, checked before it is stored (pure). Web Push
 * and UnifiedPush tokens are subscriptions: an https endpoint of the push service and, for
 * Web Push, the browser's P-256 key and auth secret (RFC 8291), stored in one canonical form.
 */

import { fromBase64Url } from "../platform/base64url.ts";
import type { PushPlatformName } from "../store/push_ports.ts";
import { PUSH_TOKEN_MAX_BYTES } from "../store/push_rules.ts";

export interface WebPushSubscription {
  endpoint: string;
  keys?: { p256dh: string; auth: string };
}

const ENDPOINT_MAX_CHARS = 2048;

/** The token to store, or the reason it is refused (a clear INVALID_ARGUMENT message). */
export function normalizePushToken(
  platform: PushPlatformName,
  token: string,
): { token: string } | { refused: string } {
  if (token.length === 0 || new TextEncoder().encode(token).length > PUSH_TOKEN_MAX_BYTES) {
    return { refused: `token must have 1..${PUSH_TOKEN_MAX_BYTES} bytes` };
  }
  switch (platform) {
    case "apns":
      return /^[0-9a-fA-F]{64,200}$/.test(token)
        ? { token: token.toLowerCase() }
        : { refused: "an APNs device token is 64..200 hex digits" };
    case "fcm":
      return /^[A-Za-z0-9:_-]+$/.test(token)
        ? { token }
        : { refused: "an FCM registration token has only [A-Za-z0-9:_-]" };
    case "web-push":
    case "unified-push":
      return subscriptionToken(platform, token);
  }
}

/** Parses a stored Web Push / UnifiedPush token (as normalizePushToken wrote it). */
export function parseSubscription(token: string): WebPushSubscription {
  return JSON.parse(token) as WebPushSubscription;
}

function subscriptionToken(
  platform: "web-push" | "unified-push",
  token: string,
): { token: string } | { refused: string } {
  let value: unknown = token;
  if (token.startsWith("{")) {
    try {
      value = JSON.parse(token);
    } catch {
      return { refused: "the subscription is not JSON" };
    }
  } else if (platform === "web-push") {
    return {
      refused: 'a Web Push token is the subscription: {"endpoint","keys":{"p256dh","auth"}}',
    };
  }
  const subscription = typeof value === "string" ? { endpoint: value } : value as {
    endpoint?: unknown;
    keys?: { p256dh?: unknown; auth?: unknown };
  };
  const endpoint = subscription?.endpoint;
  if (typeof endpoint !== "string" || !httpsUrl(endpoint)) {
    return { refused: `endpoint must be an https URL of at most ${ENDPOINT_MAX_CHARS} characters` };
  }
  const keys = subscription.keys;
  if (keys === undefined) {
    return platform === "web-push"
      ? { refused: "a Web Push subscription needs keys.p256dh and keys.auth" }
      : { token: JSON.stringify({ endpoint }) };
  }
  const p256dh = typeof keys.p256dh === "string" ? fromBase64Url(keys.p256dh) : undefined;
  const auth = typeof keys.auth === "string" ? fromBase64Url(keys.auth) : undefined;
  if (!p256dh || p256dh.length !== 65 || p256dh[0] !== 0x04) {
    return { refused: "keys.p256dh must be an uncompressed P-256 point (65 bytes, base64url)" };
  }
  if (!auth || auth.length !== 16) return { refused: "keys.auth must be 16 bytes (base64url)" };
  return {
    token: JSON.stringify({ endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } }),
  };
}

function httpsUrl(text: string): boolean {
  if (text.length > ENDPOINT_MAX_CHARS) return false;
  try {
    const url = new URL(text);
    return url.protocol === "https:" && url.username === "" && url.password === "";
  } catch {
    return false;
  }
}
