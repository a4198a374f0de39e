/**
 * The server's VAPID key pair (RFC 8292): from VAPID_PRIVATE_KEY, or kept in a private file
 * beside the embedded database, created on first start. The public key is what browsers
 * subscribe with (GetPushSettings); the private key signs every Web Push request.
 */

import { p256 } from "@noble/curves/nist.js";
import { fromBase64Url, toBase64Url } from "../platform/base64url.ts";
import type { NotificationSettings } from "./settings.ts";

export interface VapidKeys {
  /** 32-byte private scalar, base64url. */
  privateKey: string;
  /** 65-byte uncompressed public point. */
  publicKey: Uint8Array;
}

/** The key pair, or undefined when none is configured (Web Push is then off). */
export async function loadVapidKeys(
  settings: NotificationSettings,
): Promise<VapidKeys | undefined> {
  if (settings.vapidPrivateKey) return keysOf(settings.vapidPrivateKey);
  const file = settings.vapidKeyFile;
  if (!file) return undefined;
  const existing = await Deno.readTextFile(file).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  });
  if (existing !== undefined) {
    const parsed = JSON.parse(existing) as { privateKey?: unknown };
    if (typeof parsed.privateKey !== "string") throw new Error(`${file} holds no VAPID key`);
    return keysOf(parsed.privateKey);
  }
  const privateKey = toBase64Url(p256.utils.randomSecretKey());
  await Deno.writeTextFile(file, JSON.stringify({ privateKey }), { mode: 0o600, createNew: true });
  return keysOf(privateKey);
}

function keysOf(privateKey: string): VapidKeys {
  const scalar = fromBase64Url(privateKey);
  if (!scalar || scalar.length !== 32) throw new Error("the VAPID private key is not 32 bytes");
  return { privateKey, publicKey: p256.getPublicKey(scalar, false) };
}
