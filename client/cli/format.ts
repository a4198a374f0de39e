/** How the chat CLI shows things: pure formatting, no I/O. */

import type { ClientErrorCode, Contact, GuardynClientError, StoredMessage } from "../mod.ts";

export interface FormatOptions {
  /** Show times in UTC (tests) instead of local time. */
  utc?: boolean;
}

export function clock(ms: number, options: FormatOptions = {}): string {
  const date = new Date(ms);
  const [h, m] = options.utc
    ? [date.getUTCHours(), date.getUTCMinutes()]
    : [date.getHours(), date.getMinutes()];
  return `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}`;
}

const STATUS_MARK: Record<StoredMessage["status"], string> = {
  sending: "…",
  sent: "✓",
  delivered: "✓✓",
  read: "✓✓ read",
  failed: "✗ not sent",
  unread: "",
};

/** One message line: "[12:03] bob: hello" or "[12:04] you: hi ✓✓". */
export function messageLine(
  message: StoredMessage,
  peerName: string,
  options: FormatOptions = {},
): string {
  const who = message.direction === "out" ? "you" : peerName;
  const mark = message.direction === "out" ? ` ${STATUS_MARK[message.status]}` : "";
  const warning = message.identityWarning ? " ⚠ (new safety number)" : "";
  const file = message.file
    ? ` 📎 ${message.file.name} (${sizeText(message.file.plainSize)}) — /save ${message.id}`
    : "";
  return `[${
    clock(message.serverTimestampMs, options)
  }] ${who}: ${message.body}${file}${mark.trimEnd()}${warning}`;
}

/** 1234567 -> "1.2 MB". */
export function sizeText(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ["kB", "MB", "GB"];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** "[#####.....] 50 %" for a transfer. */
export function progressBar(done: number, total: number, width = 20): string {
  const share = total === 0 ? 1 : Math.min(1, done / total);
  const filled = Math.round(share * width);
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${Math.round(share * 100)} %`;
}

/** 60 digits as three lines of four 5-digit groups, like Signal shows them. */
export function safetyNumberLines(digits: string): string[] {
  const groups = digits.match(/\d{5}/g) ?? [];
  return [0, 4, 8].map((start) => groups.slice(start, start + 4).join(" "));
}

export function contactLine(contact: Contact, unread: number): string {
  const name = contact.username ?? contact.accountId;
  const trust = contact.blocked
    ? " ⚠ safety number changed (not accepted)"
    : contact.changedAtMs !== undefined
    ? " ⚠ safety number changed"
    : contact.verified
    ? " ✓ verified"
    : "";
  return `${name}${unread > 0 ? ` (${unread} unread)` : ""}${trust}`;
}

const FRIENDLY: Partial<Record<ClientErrorCode, string>> = {
  USERNAME_TAKEN: "That username is taken; pick another one.",
  INVALID_CREDENTIALS: "Wrong username or password.",
  WEAK_PASSWORD: "The password must have 8 to 256 characters.",
  RATE_LIMITED: "Too many attempts; wait a little and try again.",
  DEVICE_LIMIT_REACHED: "The account already has the maximum number of devices; revoke one first.",
  NOT_FOUND: "Not found.",
  BAD_PASSPHRASE: "Wrong passphrase for this profile.",
  PROFILE_LOCKED: "This profile is open in another terminal.",
  LOGIN_REQUIRED: "Your session ended; log in again with /login.",
  EXPIRED: "The link code expired or was used; start again with /link.",
  IDENTITY_KEY_MISSING: "That user has not finished setting up (no keys published yet).",
};

/** A readable sentence for an error; the code stays visible for bug reports. */
export function errorLine(error: GuardynClientError, server: string): string {
  if (error.code === "UNAVAILABLE") {
    return `Cannot reach the server at ${server}. Is it running (deno task dev)?`;
  }
  return `${FRIENDLY[error.code] ?? error.message} [${error.code}]`;
}
