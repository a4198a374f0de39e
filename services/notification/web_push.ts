/**
 * Web Push (RFC 8030) with message encryption (RFC 8291, aes128gcm, padded to 4 KiB) and VAPID
 * (RFC 8292) by @block65/webcrypto-web-push. UnifiedPush endpoints are Web Push too; one
 * registered without keys gets the same content-free wake unencrypted.
 */

import { buildPushPayload } from "@block65/webcrypto-web-push";
import { toBase64Url } from "../platform/base64url.ts";
import { parseSubscription } from "./push_tokens.ts";
import type { VapidKeys } from "./vapid.ts";
import { endpointRefusal, type Resolve } from "./endpoint_guard.ts";
import {
  outcomeOfStatus,
  type PushSender,
  type SendOutcome,
  type Wake,
  WAKE_PAYLOAD,
  WAKE_TOPIC,
  wakeTtlSeconds,
} from "./wake.ts";

export interface WebPushOptions {
  vapid: VapidKeys;
  /** mailto: or https: contact the push service may use (the JWT's sub). */
  subject: string;
  resolve: Resolve;
  allowPrivateEndpoints: boolean;
  timeoutMs: number;
  fetch?: typeof fetch;
}

export function webPushSender(options: WebPushOptions): PushSender {
  const doFetch = options.fetch ?? fetch;
  const vapid = {
    subject: options.subject,
    publicKey: toBase64Url(options.vapid.publicKey),
    privateKey: options.vapid.privateKey,
  };
  return {
    async send(token: string, wake: Wake): Promise<SendOutcome> {
      const subscription = parseSubscription(token);
      const refusal = await endpointRefusal(
        subscription.endpoint,
        options.resolve,
        options.allowPrivateEndpoints,
      );
      if (refusal) return { kind: "refused", reason: `endpoint refused: ${refusal}` };
      const message = {
        data: WAKE_PAYLOAD,
        options: { ttl: wakeTtlSeconds(wake), urgency: "high" as const, topic: WAKE_TOPIC },
      };
      const request = subscription.keys
        ? await buildPushPayload(
          message,
          { endpoint: subscription.endpoint, expirationTime: null, keys: subscription.keys },
          vapid,
        )
        : {
          method: "POST",
          headers: {
            ttl: String(wakeTtlSeconds(wake)),
            urgency: "high",
            topic: WAKE_TOPIC,
            "content-type": "application/json",
          },
          body: new TextEncoder().encode(WAKE_PAYLOAD),
        };
      try {
        const response = await doFetch(subscription.endpoint, {
          ...request,
          redirect: "manual",
          signal: AbortSignal.timeout(options.timeoutMs),
        });
        await response.body?.cancel();
        return outcomeOfStatus(response.status);
      } catch (error) {
        const reason = error instanceof DOMException && error.name === "TimeoutError"
          ? `no answer within ${options.timeoutMs} ms`
          : "the push service is unreachable";
        return { kind: "retry", reason };
      }
    },
  };
}
