/**
 * What a push says: only that the device should connect. No sender, no text, no group, no
 * count; an incoming call differs only in how long the push service may hold it.
 */

export interface Wake {
  /** An incoming call: worth a push even right after another, and useless a minute later. */
  urgent: boolean;
}

/** The whole payload, before the push encryption (RFC 8291 pads it to 4 KiB anyway). */
export const WAKE_PAYLOAD = '{"v":1,"type":"wake"}';

/** How long the push service may hold a wake for an offline device. */
export function wakeTtlSeconds(wake: Wake): number {
  return wake.urgent ? 60 : 24 * 3600;
}

/**
 * RFC 8030 topic: a newer wake replaces one the push service still holds, so a device that
 * comes back gets one push, not one per message.
 */
export const WAKE_TOPIC = "guardyn-wake";

/** What a sender learned from the push service. */
export type SendOutcome =
  | { kind: "accepted" }
  /** The token is dead (404/410, Unregistered): remove it if it is still the stored one. */
  | { kind: "gone"; status: number }
  /** Worth another try later (5xx, 429, network). */
  | { kind: "retry"; reason: string }
  /** Our request or the endpoint is wrong; retrying will not help. */
  | { kind: "refused"; reason: string };

export interface PushSender {
  send(token: string, wake: Wake): Promise<SendOutcome>;
}

/** Maps a push service's HTTP status to an outcome (RFC 8030 §5, §8). */
export function outcomeOfStatus(status: number): SendOutcome {
  if (status >= 200 && status < 300) return { kind: "accepted" };
  if (status === 404 || status === 410) return { kind: "gone", status };
  if (status === 429 || status >= 500) return { kind: "retry", reason: `HTTP ${status}` };
  return { kind: "refused", reason: `HTTP ${status}` };
}
