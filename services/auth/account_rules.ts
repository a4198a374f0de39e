/**
 * The account rules, pure: usernames, password strength, directory search bounds, linking
 * tokens and what a device list reveals. Each check throws INVALID_ARGUMENT naming the limit,
 * or returns the canonical value; the handlers only read, call these and store.
 */

import { base64url } from "jose";
import { invalidArgument } from "../platform/errors.ts";
import { checkId } from "./validation.ts";

/** Usernames: case-insensitive unique, 3–32 of [a-z0-9_], stored in their canonical form. */
export const USERNAME_PATTERN = /^[a-z0-9_]{3,32}$/;
export const USERNAME_RULE = "username must be 3-32 characters of a-z, 0-9 and _";

/** The canonical (lowercase) username, or undefined when it is not valid. */
export function canonicalUsername(input: string): string | undefined {
  if (input.length > 64) return undefined;
  const canonical = input.trim().toLowerCase();
  return USERNAME_PATTERN.test(canonical) ? canonical : undefined;
}

export const PASSWORD_MIN_LENGTH = 8;
/** Bounded so a huge password cannot cost hashing time. */
export const PASSWORD_MAX_LENGTH = 256;

export function passwordProblem(password: string): string | undefined {
  const length = [...password].length;
  if (length < PASSWORD_MIN_LENGTH || length > PASSWORD_MAX_LENGTH) {
    return `password must be ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters`;
  }
  return undefined;
}

/** Throws WEAK_PASSWORD when the password breaks the rule. */
export function checkPasswordStrength(password: string): void {
  const problem = passwordProblem(password);
  if (problem) throw invalidArgument(problem, "WEAK_PASSWORD");
}

export const SEARCH_PAGE_MAX = 50;
/** A search prefix this long narrows the directory enough that it cannot be listed by it. */
export const SEARCH_PREFIX_MIN = 5;
const SEARCH_PREFIX = new RegExp(`^[a-z0-9_]{${SEARCH_PREFIX_MIN},32}$`);
export const SEARCH_PAGE_DEFAULT = 20;

/** A username search: prefix, page size and the page token (the last username shown). */
export function checkUserSearch(
  rawPrefix: string,
  page: { pageSize: number; pageToken: string } | undefined,
): { prefix: string; pageSize: number; after: string } {
  const prefix = rawPrefix.trim().toLowerCase();
  if (!SEARCH_PREFIX.test(prefix)) {
    throw invalidArgument(`prefix must be ${SEARCH_PREFIX_MIN}..32 characters of [a-z0-9_]`);
  }
  const pageSize = page?.pageSize || SEARCH_PAGE_DEFAULT;
  if (pageSize < 1 || pageSize > SEARCH_PAGE_MAX) {
    throw invalidArgument(`page.page_size must be 1..${SEARCH_PAGE_MAX}`);
  }
  // The page token is the last username of the previous page (usernames are public).
  const after = page?.pageToken ?? "";
  if (after !== "" && (!after.startsWith(prefix) || !USERNAME_PATTERN.test(after))) {
    throw invalidArgument("page.page_token does not belong to this search");
  }
  return { prefix, pageSize, after };
}

export const PROVISIONING_TOKEN_MAX_CHARS = 512;

/** "<session id>.<base64url wait secret>" → its parts, or INVALID_ARGUMENT. */
export function parseProvisioningToken(token: string): { sessionId: string; secret: Uint8Array } {
  const [sessionId, encodedSecret] = token.split(".");
  if (!sessionId || !encodedSecret || token.length > PROVISIONING_TOKEN_MAX_CHARS) {
    throw invalidArgument("provisioning_token is malformed");
  }
  checkId(sessionId, "provisioning_token");
  try {
    return { sessionId, secret: base64url.decode(encodedSecret) };
  } catch {
    throw invalidArgument("provisioning_token is malformed");
  }
}

export function provisioningToken(sessionId: string, secret: Uint8Array): string {
  return `${sessionId}.${base64url.encode(secret)}`;
}

const DAY_MS = 86_400_000;

/** Last-seen times are shown to the day only: a device list is not an activity log. */
export function lastSeenDay(lastSeenAtMs: number): number {
  return Math.floor(lastSeenAtMs / DAY_MS) * DAY_MS;
}
