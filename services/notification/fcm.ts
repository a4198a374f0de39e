/**
 * FCM HTTP v1 sender without the vendor SDK: a service account's RS256 JWT assertion is traded
 * for an OAuth 2 access token (kept until a minute before it expires), then one POST per wake
 * to `/v1/projects/<project>/messages:send`. The message is data-only (`{"v":"1","type":
 * "wake"}`), high priority, collapsible: the app fetches and decrypts its mail itself.
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

export interface FcmServiceAccount {
  project_id: string;
  client_email: string;
  private_key: string;
  token_uri: string;
}

export interface FcmOptions {
  account: FcmServiceAccount;
  /** https://fcm.googleapis.com */
  url: string;
  timeoutMs: number;
  now?: () => number;
  fetch?: typeof fetch;
}

const SCOPE = "https://www.googleapis.com/auth/firebase.messaging";

export async function fcmSender(options: FcmOptions): Promise<PushSender> {
  const { account } = options;
  const key = await jose.importPKCS8(account.private_key, "RS256");
  const now = options.now ?? Date.now;
  const doFetch = options.fetch ?? fetch;
  let access: { token: string; untilMs: number } | undefined;
  const accessToken = async () => {
    if (access && now() < access.untilMs) return access.token;
    const seconds = Math.floor(now() / 1000);
    const assertion = await new jose.SignJWT({ scope: SCOPE })
      .setProtectedHeader({ alg: "RS256", typ: "JWT" })
      .setIssuer(account.client_email)
      .setAudience(account.token_uri)
      .setIssuedAt(seconds)
      .setExpirationTime(seconds + 3600)
      .sign(key);
    const response = await doFetch(account.token_uri, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
        assertion,
      }),
      signal: AbortSignal.timeout(options.timeoutMs),
    });
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`the FCM token endpoint answered HTTP ${response.status}`);
    }
    const body = await response.json() as { access_token?: string; expires_in?: number };
    if (!body.access_token) throw new Error("the FCM token endpoint gave no access token");
    access = {
      token: body.access_token,
      untilMs: now() + Math.max(0, (body.expires_in ?? 3600) - 60) * 1000,
    };
    return access.token;
  };
  return {
    async send(token: string, wake: Wake): Promise<SendOutcome> {
      try {
        const response = await doFetch(
          `${options.url}/v1/projects/${account.project_id}/messages:send`,
          {
            method: "POST",
            headers: {
              authorization: `Bearer ${await accessToken()}`,
              "content-type": "application/json",
            },
            body: JSON.stringify({
              message: {
                token,
                data: { v: "1", type: "wake" },
                android: {
                  priority: "HIGH",
                  ttl: `${wakeTtlSeconds(wake)}s`,
                  collapse_key: WAKE_TOPIC,
                },
              },
            }),
            redirect: "manual",
            signal: AbortSignal.timeout(options.timeoutMs),
          },
        );
        const text = await response.text();
        if (response.status === 404 || response.status === 400) {
          // FCM says UNREGISTERED (404) for a dead token; 400 is our request or a bad token.
          const code = errorCodeOf(text);
          if (code === "UNREGISTERED") return { kind: "gone", status: response.status };
          return { kind: "refused", reason: `HTTP ${response.status} ${code}` };
        }
        return outcomeOfStatus(response.status);
      } catch (error) {
        return { kind: "retry", reason: `FCM: ${(error as Error).message}` };
      }
    },
  };
}

function errorCodeOf(text: string): string {
  try {
    const body = JSON.parse(text) as {
      error?: { status?: string; details?: { errorCode?: string }[] };
    };
    return body.error?.details?.find((d) => d.errorCode)?.errorCode ?? body.error?.status ?? "";
  } catch {
    return "";
  }
}
