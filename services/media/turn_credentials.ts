/**
 * TURN credentials in coturn's REST API scheme (`use-auth-secret`): the username is
 * "<expiry, unix seconds>:<random opaque id>" and the password base64(HMAC-SHA1(shared
 * secret, username)). coturn recomputes the password from the username, so nothing is
 * stored, and the expiry inside the username ends the credential. The opaque id is random,
 * never the account id: the TURN server learns nothing about who relays. Pure.
 */
import { createHmac } from "node:crypto";
import { toBase64Url } from "../platform/base64url.ts";

/** The longest a credential may live (the contract's bound). */
export const TURN_TTL_MAX_SECONDS = 86_400;

export interface TurnCredential {
  urls: string[];
  username: string;
  credential: string;
  ttlSeconds: number;
}

export function turnCredential(
  options: { secret: string; urls: readonly string[]; ttlSeconds: number },
  nowMs: number,
  randomId: Uint8Array = crypto.getRandomValues(new Uint8Array(12)),
): TurnCredential {
  if (options.secret.length < 16) throw new Error("the TURN shared secret is too short");
  if (!(options.ttlSeconds >= 60 && options.ttlSeconds <= TURN_TTL_MAX_SECONDS)) {
    throw new Error(`TURN credential lifetime must be 60..${TURN_TTL_MAX_SECONDS} s`);
  }
  const expiry = Math.floor(nowMs / 1000) + options.ttlSeconds;
  const username = `${expiry}:${toBase64Url(randomId)}`;
  const credential = createHmac("sha1", options.secret).update(username).digest("base64");
  return { urls: [...options.urls], username, credential, ttlSeconds: options.ttlSeconds };
}

/** The TURN URLs for a deployment's TURN host (`turn.<DOMAIN>`): UDP, TCP and TLS. */
export function defaultTurnUrls(turnHost: string): string[] {
  return [
    `turn:${turnHost}:3478?transport=udp`,
    `turn:${turnHost}:3478?transport=tcp`,
    `turns:${turnHost}:5349?transport=tcp`,
  ];
}
