/** Pure checks of push registrations shared by the adapters. */
import { StoreInputError } from "./errors.ts";
import { checkDevice } from "./mailbox_rules.ts";
import type { PushPlatformName, PushRegistration } from "./push_ports.ts";

export const PUSH_PLATFORM_NAMES: readonly PushPlatformName[] = [
  "apns",
  "fcm",
  "web-push",
  "unified-push",
];
/** Bytes of a token (the contract's bound). */
export const PUSH_TOKEN_MAX_BYTES = 4096;
export const PUSH_APP_ID_MAX_CHARS = 255;
/** Registrations one account lists: one per device, and an account has at most 10 devices. */
export const PUSH_LIST_MAX = 100;

export function validatePushRegistration(r: PushRegistration): void {
  checkDevice(r.device, "device");
  if (!PUSH_PLATFORM_NAMES.includes(r.platform)) {
    throw new StoreInputError(`platform must be one of ${PUSH_PLATFORM_NAMES.join(", ")}`);
  }
  checkPushToken(r.token);
  if (typeof r.appId !== "string" || r.appId.length > PUSH_APP_ID_MAX_CHARS) {
    throw new StoreInputError(`appId: at most ${PUSH_APP_ID_MAX_CHARS} characters`);
  }
  for (
    const [value, what] of [[r.registeredAtMs, "registeredAtMs"], [
      r.lastDeliveredAtMs,
      "lastDeliveredAtMs",
    ]] as const
  ) {
    if (!Number.isSafeInteger(value) || value < 0) throw new StoreInputError(`${what} is invalid`);
  }
}

export function checkPushToken(token: string): void {
  if (
    typeof token !== "string" || token.length === 0 ||
    new TextEncoder().encode(token).length > PUSH_TOKEN_MAX_BYTES
  ) {
    throw new StoreInputError(`a push token has 1..${PUSH_TOKEN_MAX_BYTES} bytes`);
  }
}

export function checkClaimTimes(seenMs: number, atMs: number): void {
  for (const value of [seenMs, atMs]) {
    if (!Number.isSafeInteger(value) || value < 0) throw new StoreInputError("invalid push time");
  }
}

export function checkAccountId(accountId: string): void {
  checkDevice({ accountId, deviceId: "x" }, "account");
}
