/**
 * The chat CLI's command layer: parses a line, runs it against a GuardynClient and prints what
 * happened; also renders the client's events. Input and output go through `ChatIo`, so the
 * same code runs in a terminal (terminal.ts) and in tests.
 */

import { join } from "node:path";
import {
  type ClientEvent,
  type GroupMessage,
  GuardynClient,
  GuardynClientError,
  type GuardynClientOptions,
  type LinkingSession,
} from "../mod.ts";
import { ProfileFile } from "../profile_file.ts";
import {
  contactLine,
  errorLine,
  type FormatOptions,
  messageLine,
  progressBar,
  safetyNumberLines,
  sizeText,
} from "./format.ts";

export interface ChatIo {
  print(line: string): void;
  /** Reads one line after showing `prompt`; `secret` input is not echoed. */
  ask(prompt: string, options?: { secret?: boolean }): Promise<string>;
}

export interface ChatConfig {
  server: string;
  profileDir: string;
  profile: string;
  /** When set, used instead of asking (scripts and tests). */
  passphrase?: string;
  deviceName?: string;
  tls?: boolean;
  /** Extra client options (tests: cheap key derivation, small key batches). */
  clientOptions?: Partial<GuardynClientOptions>;
  format?: FormatOptions;
  /** The device was removed or signed out for good: the CLI should exit. */
  onEnded?: () => void;
}

const PROFILE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const HISTORY_SHOWN = 20;
const TYPING_SHOWN_EVERY_MS = 5_000;
const TYPING_RESEND_MS = 4_000;

export const HELP = [
  "Commands:",
  "  /register <username>         create an account with this device",
  "  /login <username> [--reset]  sign this device in again (--reset: new identity key, other devices signed out)",
  "  /link                        link this new device to an account (shows a code)",
  "  /approve <code>              approve a new device that shows <code>",
  "  /whoami                      this device and account",
  "  /devices                     the account's devices",
  "  /revoke <device id>          remove a device from the account",
  "  /push                        push settings and which devices get content-free wake-ups",
  "  /push-register <endpoint>    wake this device through a UnifiedPush endpoint (https)",
  "  /push-off                    no more wake-ups for this device",
  "  /status <online|away|busy|invisible|offline> [text]  set your presence; this device heartbeats from now on",
  "  /allow <username> [--last-seen]  let them see your presence (sent to them end to end encrypted)",
  "  /disallow <username>         stop them seeing your presence",
  "  /presence [username...]      presence of these users, or of everyone who allowed you",
  "  /add <username>              find a user and add them as a contact",
  "  /contacts                    contacts with unread counts",
  "  /open <username>             open a conversation (then just type to send)",
  "  /close                       leave the conversation",
  "  /history [n]                 the last n messages of the conversation",
  "  /send <path>                 send a file to the open conversation or group (encrypted end to end)",
  "  /save <message id> [path]    save a received file (checked before it appears)",
  "  /safety [username]           the safety number to compare with them",
  "  /verify <username> <number>  mark them verified if the number matches",
  "  /trust <username>            accept their new safety number",
  "  /group-new <name> <user>...   create a group with these users (all their devices)",
  "  /groups                      your groups",
  "  /group <name>                open a group conversation (then just type to send)",
  "  /group-add <user>...         add users to the open group",
  "  /group-remove <user>...      remove users from the open group",
  "  /group-rename <name>         rename the open group",
  "  /group-leave                 leave the open group",
  "  /fingerprint                 the open group's fingerprint: compare it with the others",
  "  /reset-identity              replace the account identity key",
  "  /logout                      remove this device and delete its local data",
  "  /quit                        exit",
  "Text that does not start with / is sent to the open conversation (// sends a literal /).",
];

export class ChatSession {
  #client: GuardynClient | undefined;
  /** Stops this device's presence heartbeats (started by /status). */
  #stopPresence: (() => void) | undefined;
  #peer: string | undefined;
  /** The open group conversation's id, when a group is open instead of a peer. */
  #group: string | undefined;
  #linking: LinkingSession | undefined;
  #lastTypingShown = new Map<string, number>();
  #connection: string | undefined;
  #background = new Set<Promise<void>>();
  #typing = { active: false, atMs: 0 };

  constructor(private readonly io: ChatIo, private readonly config: ChatConfig) {}

  /** The prompt for the input line. */
  get prompt(): string {
    const account = this.#client?.account;
    if (!account) return "guest> ";
    if (this.#group) return `${account.username} → #${this.#groupName(this.#group)}> `;
    return this.#peer
      ? `${account.username} → ${this.#name(this.#peer)}> `
      : `${account.username}> `;
  }

  get client(): GuardynClient | undefined {
    return this.#client;
  }

  /** The open conversation's account id. */
  get peer(): string | undefined {
    return this.#peer;
  }

  /** Opens (or creates) the profile and connects when it is signed in. */
  async start(): Promise<void> {
    if (!PROFILE_NAME.test(this.config.profile)) {
      throw new GuardynClientError("BAD_INPUT", "a profile name has 1..64 chars of A-Za-z0-9_-");
    }
    const profilePath = join(this.config.profileDir, `${this.config.profile}.profile`);
    const exists = await ProfileFile.exists(profilePath);
    let passphrase = this.config.passphrase;
    if (passphrase === undefined) {
      if (exists) {
        passphrase = await this.io.ask(`Passphrase for profile "${this.config.profile}": `, {
          secret: true,
        });
      } else {
        this.io.print(`Creating profile "${this.config.profile}" in ${this.config.profileDir}.`);
        passphrase = await this.io.ask("Choose a passphrase to encrypt it: ", { secret: true });
        const again = await this.io.ask("Repeat the passphrase: ", { secret: true });
        if (again !== passphrase) {
          throw new GuardynClientError("BAD_INPUT", "the passphrases differ");
        }
      }
    }
    this.#client = await GuardynClient.open({
      server: this.config.server,
      profilePath,
      passphrase,
      tls: this.config.tls,
      deviceName: this.config.deviceName ?? `CLI ${this.config.profile}`,
      ...this.config.clientOptions,
    });
    this.#client.on((event) => this.#render(event));
    const account = this.#client.account;
    if (account) {
      this.io.print(
        `Signed in as ${account.username} on device ${account.deviceId} (${this.config.server}).`,
      );
      this.#client.connect();
    } else {
      this.io.print(`Server ${this.config.server}. This device is not signed in yet.`);
      this.io.print(
        "Use /register <username>, or /link to add it to an existing account. /help lists commands.",
      );
    }
  }

  /** Runs one input line; false when the user asked to quit. */
  async execute(line: string): Promise<boolean> {
    const text = line.trim();
    if (text === "") return true;
    try {
      if (!text.startsWith("/") || text.startsWith("//")) {
        await this.#send(text.startsWith("//") ? text.slice(1) : text);
        return true;
      }
      const [command, ...args] = text.split(/\s+/) as [string, ...string[]];
      return await this.#command(command.toLowerCase(), args);
    } catch (error) {
      this.#printError(error);
      return true;
    }
  }

  /** Waits for background work started by commands (linking). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.#background]);
  }

  async close(): Promise<void> {
    this.#stopPresence?.();
    this.#linking?.cancel();
    await this.settle();
    await this.#client?.close();
  }

  /**
   * The input line changed: tell the peer of the open conversation that we type (at most every
   * few seconds) or stopped. Commands are not typing. Best effort.
   */
  inputChanged(text: string): void {
    const peer = this.#peer;
    if (!peer || !this.#client?.account) return;
    const active = text.length > 0 && !text.startsWith("/");
    const now = Date.now();
    if (active === this.#typing.active && (!active || now - this.#typing.atMs < TYPING_RESEND_MS)) {
      return;
    }
    this.#typing = { active, atMs: now };
    void this.#client.sendTyping(peer, active).catch(() => {});
  }

  async #command(command: string, args: string[]): Promise<boolean> {
    const client = this.#requireClient();
    switch (command) {
      case "/help":
        HELP.forEach((line) => this.io.print(line));
        return true;
      case "/quit":
      case "/exit":
        return false;
      case "/register": {
        const username = this.#arg(args, 0, "/register <username>");
        const password = await this.#newPassword();
        const account = await client.register(username, password);
        this.io.print(
          `Registered ${account.username}. This device is ${account.deviceId}. Keys published.`,
        );
        client.connect();
        return true;
      }
      case "/login": {
        const username = this.#arg(args, 0, "/login <username> [--reset]");
        const reset = args.includes("--reset");
        if (reset) {
          this.io.print(
            "--reset replaces the account identity key: other devices are signed out and",
          );
          this.io.print("every contact sees a safety number change.");
        }
        const password = await this.io.ask("Password: ", { secret: true });
        const account = await client.login(username, password, { resetIdentity: reset });
        this.io.print(`Signed in as ${account.username} (device ${account.deviceId}).`);
        client.connect();
        return true;
      }
      case "/link":
        await this.#startLinking(client);
        return true;
      case "/approve": {
        const code = this.#arg(args, 0, "/approve <code>");
        await client.approveLink(code);
        this.io.print("Approved: the new device is joining your account.");
        return true;
      }
      case "/whoami": {
        const account = client.account;
        this.io.print(
          account
            ? `${account.username} (account ${account.accountId}), device ${account.deviceId} "${client.deviceName}", server ${client.server}`
            : `not signed in; server ${client.server}`,
        );
        return true;
      }
      case "/devices": {
        for (const device of await client.listDevices()) {
          const seen = new Date(device.lastSeenMs).toISOString().slice(0, 10);
          this.io.print(
            `${device.current ? "*" : " "} ${device.deviceId}  ${device.name}  (last seen ${seen})`,
          );
        }
        return true;
      }
      case "/push": {
        const settings = await client.pushSettings();
        this.io.print(
          settings.platforms.length === 0
            ? "Push is off on this server."
            : `Push platforms: ${settings.platforms.join(", ")}. Pushes carry no content.`,
        );
        const registrations = await client.pushRegistrations();
        if (registrations.length === 0) this.io.print("No device is registered for push.");
        for (const r of registrations) {
          const last = r.lastDeliveredAtMs
            ? new Date(r.lastDeliveredAtMs).toISOString().slice(0, 16)
            : "never";
          const mine = r.deviceId === client.account?.deviceId ? "*" : " ";
          this.io.print(`${mine} ${r.deviceId}  ${r.platform}  (last push ${last})`);
        }
        return true;
      }
      case "/push-register": {
        const endpoint = this.#arg(args, 0, "/push-register <https endpoint>");
        await client.registerPush({ platform: "unified-push", endpoint });
        this.io.print("This device will be woken through that endpoint (no content is pushed).");
        return true;
      }
      case "/status": {
        const status = this.#arg(args, 0, "/status <online|away|busy|invisible|offline> [text]");
        const statuses = ["online", "away", "busy", "invisible", "offline"] as const;
        const chosen = statuses.find((s) => s === status);
        if (!chosen) throw new GuardynClientError("BAD_INPUT", `status: ${statuses.join(", ")}`);
        await client.setPresence(chosen, args.slice(1).join(" "));
        this.#stopPresence ??= client.startPresence();
        this.io.print(`Presence: ${chosen}. Only users you /allow see it.`);
        return true;
      }
      case "/allow": {
        const who = this.#arg(args, 0, "/allow <username> [--last-seen]");
        const lastSeen = args.includes("--last-seen");
        await client.allowPresence(who, { lastSeen });
        this.io.print(
          `${who} can now see your presence${lastSeen ? " and when you were last online" : ""}.`,
        );
        return true;
      }
      case "/disallow": {
        const who = this.#arg(args, 0, "/disallow <username>");
        const done = await client.disallowPresence(who);
        this.io.print(done ? `${who} no longer sees your presence.` : `${who} was not allowed.`);
        return true;
      }
      case "/presence": {
        const who = args.length > 0 ? args : client.presenceGrants().map((g) => g.accountId);
        if (who.length === 0) {
          this.io.print("Nobody has allowed you to see their presence yet.");
          return true;
        }
        for (const p of await client.presenceOf(who)) {
          const seen = p.lastSeenMs
            ? ` (last seen ${new Date(p.lastSeenMs).toISOString().slice(0, 16).replace("T", " ")})`
            : "";
          const text = p.customText ? ` "${p.customText}"` : "";
          this.io.print(`${this.#name(p.accountId)}: ${p.status}${text}${seen}`);
        }
        return true;
      }
      case "/push-off": {
        await client.unregisterPush();
        this.io.print("This device will not be pushed any more.");
        return true;
      }
      case "/revoke": {
        const wanted = this.#arg(args, 0, "/revoke <device id>");
        const devices = await client.listDevices();
        const matches = devices.filter((d) => d.deviceId.startsWith(wanted));
        if (matches.length !== 1) {
          throw new GuardynClientError(
            "BAD_INPUT",
            matches.length === 0 ? "no such device" : "that prefix names several devices",
          );
        }
        await client.revokeDevice(matches[0]!.deviceId);
        this.io.print(`Device ${matches[0]!.deviceId} (${matches[0]!.name}) was removed.`);
        return true;
      }
      case "/add": {
        const contact = await client.lookup(this.#arg(args, 0, "/add <username>"));
        this.io.print(
          `Added ${contact.username ?? contact.accountId}. /open ${contact.username} to write.`,
        );
        return true;
      }
      case "/contacts": {
        const unread = new Map(client.conversations().map((c) => [c.peer, c.unread]));
        const contacts = client.contacts();
        if (contacts.length === 0) this.io.print("No contacts yet: /add <username>.");
        for (const contact of contacts) {
          this.io.print(contactLine(contact, unread.get(contact.accountId) ?? 0));
        }
        return true;
      }
      case "/open": {
        const who = this.#arg(args, 0, "/open <username>");
        const contact = client.contact(who) ?? await client.lookup(who);
        this.#peer = contact.accountId;
        this.io.print(
          `Conversation with ${this.#name(contact.accountId)}. Type to send; /close to leave.`,
        );
        this.#showHistory(HISTORY_SHOWN);
        await client.markRead(contact.accountId);
        return true;
      }
      case "/close":
        this.#peer = undefined;
        this.#group = undefined;
        return true;
      case "/send": {
        const path = this.#arg(args, 0, "/send <path>");
        let shown = -1;
        const options = {
          onProgress: ({ sentBytes, totalBytes }: { sentBytes: number; totalBytes: number }) => {
            const step = Math.floor((sentBytes / Math.max(1, totalBytes)) * 4);
            if (step !== shown) {
              shown = step;
              this.io.print(`  uploading ${progressBar(sentBytes, totalBytes)}`);
            }
          },
        };
        // In a group: for its members; else for the open conversation's contact.
        const sent = this.#group
          ? await client.sendGroupFile(this.#group, args.join(" "), options)
          : await client.sendFile(this.#peerOrFail(), args.join(" "), options);
        this.io.print(`Sent ${sent.file?.name ?? path} (${sizeText(sent.file?.plainSize ?? 0)}).`);
        return true;
      }
      case "/save": {
        const id = this.#arg(args, 0, "/save <message id> [path]");
        const group = this.#group;
        const message = group
          ? client.groupMessages(group).find((m) => m.id === id)
          : client.messages(this.#peerOrFail()).find((m) => m.id === id);
        if (!message?.file) throw new GuardynClientError("BAD_INPUT", `no file in message ${id}`);
        const target = args[1] ?? join(this.config.profileDir, message.file.name);
        const size = group
          ? await client.saveGroupFile(group, id, target)
          : await client.saveFile(this.#peerOrFail(), id, target);
        this.io.print(`Saved ${target} (${sizeText(size)}), digest checked.`);
        return true;
      }
      case "/group-new": {
        const name = this.#arg(args, 0, "/group-new <name> <username>...");
        const group = await client.createGroup(name, args.slice(1));
        this.#group = group.id;
        this.#peer = undefined;
        this.io.print(
          `Group #${name} created with ${group.members.length} devices. Type to send; /close to leave.`,
        );
        return true;
      }
      case "/groups": {
        const groups = client.groups().filter((g) => g.active);
        if (groups.length === 0) this.io.print("(no groups yet: /group-new <name> <user>...)");
        for (const g of groups) {
          this.io.print(
            `  #${g.name || g.id.slice(0, 8)}  ${g.members.length} devices, epoch ${g.epoch}` +
              (g.forks > 0 ? `  ! fork detected ${g.forks}x` : ""),
          );
        }
        return true;
      }
      case "/group": {
        const wanted = this.#arg(args, 0, "/group <name>").replace(/^#/, "");
        const group = client.groups().find((g) =>
          g.active && (g.name === wanted || g.id.startsWith(wanted))
        );
        if (!group) throw new GuardynClientError("BAD_INPUT", `no group ${wanted}: see /groups`);
        this.#group = group.id;
        this.#peer = undefined;
        this.io.print(`Group #${group.name} (${group.members.length} devices). /close to leave.`);
        for (const m of client.groupMessages(group.id).slice(-HISTORY_SHOWN)) {
          this.io.print(this.#groupLine(m));
        }
        return true;
      }
      case "/group-add":
        await client.addToGroup(this.#groupOrFail(), args);
        this.io.print(`Added ${args.join(", ")}.`);
        return true;
      case "/group-remove":
        await client.removeFromGroup(this.#groupOrFail(), args);
        this.io.print(`Removed ${args.join(", ")}.`);
        return true;
      case "/group-rename": {
        const name = this.#arg(args, 0, "/group-rename <name>");
        await client.renameGroup(this.#groupOrFail(), args.join(" "));
        this.io.print(`Renamed to #${args.join(" ") || name}.`);
        return true;
      }
      case "/group-leave":
        await client.leaveGroup(this.#groupOrFail());
        this.io.print("You left the group.");
        this.#group = undefined;
        return true;
      case "/fingerprint": {
        const print = await client.groupFingerprint(this.#groupOrFail());
        this.io.print(`Group fingerprint: ${print}`);
        this.io.print("Every member sees the same one unless the group has forked.");
        return true;
      }
      case "/history": {
        const count = Math.min(
          1_000,
          Math.max(1, Number(args[0] ?? HISTORY_SHOWN) || HISTORY_SHOWN),
        );
        this.#showHistory(count);
        return true;
      }
      case "/safety": {
        const who = args[0] ?? this.#peerOrFail();
        const digits = await client.safetyNumber(who);
        this.io.print(`Safety number with ${this.#name(client.contact(who)?.accountId ?? who)}:`);
        safetyNumberLines(digits).forEach((line) => this.io.print(`  ${line}`));
        this.io.print(
          "Compare it with theirs (in person or on a call), then /verify <username> <number>.",
        );
        return true;
      }
      case "/verify": {
        const who = this.#arg(args, 0, "/verify <username> <number>");
        const number = args.slice(1).join("");
        if (!number) {
          throw new GuardynClientError("BAD_INPUT", "usage: /verify <username> <number>");
        }
        if (await client.verifySafetyNumber(who, number)) {
          this.io.print(`✓ ${who} is verified.`);
        } else {
          this.io.print(
            `✗ The numbers differ: do NOT mark ${who} verified. Someone may be in the middle.`,
          );
        }
        return true;
      }
      case "/trust": {
        const who = this.#arg(args, 0, "/trust <username>");
        await client.trustIdentity(who);
        this.io.print(`Accepted the new safety number of ${who}; messages can be sent again.`);
        return true;
      }
      case "/reset-identity": {
        const password = await this.io.ask("Password: ", { secret: true });
        await client.resetIdentity(password);
        this.io.print("New identity key installed; other devices were signed out.");
        return true;
      }
      case "/logout": {
        await client.logout();
        this.io.print("This device was removed and its local data deleted.");
        return false;
      }
      default:
        throw new GuardynClientError("BAD_INPUT", `unknown command ${command}; /help lists them`);
    }
  }

  async #send(text: string): Promise<void> {
    if (this.#group) {
      await this.#requireClient().sendGroupText(this.#group, text);
      return;
    }
    const peer = this.#peerOrFail();
    await this.#requireClient().sendText(peer, text);
  }

  async #startLinking(client: GuardynClient): Promise<void> {
    if (this.#linking) throw new GuardynClientError("BAD_INPUT", "linking is already in progress");
    const linking = await client.startLinking();
    this.#linking = linking;
    this.io.print("On a signed-in device of your account, run:");
    this.io.print(`  /approve ${linking.code}`);
    this.io.print(
      `The code expires at ${
        new Date(linking.expiresAtMs).toISOString().slice(11, 16)
      } UTC. Waiting...`,
    );
    const done = linking.completed.then((account) => {
      this.io.print(`Linked! This device joined ${account.username} as ${account.deviceId}.`);
      client.connect();
    }).catch((error) => this.#printError(error)).finally(() => {
      this.#linking = undefined;
      this.#background.delete(done);
    });
    this.#background.add(done);
  }

  #showHistory(count: number): void {
    const peer = this.#peerOrFail();
    const messages = this.#requireClient().messages(peer).slice(-count);
    if (messages.length === 0) this.io.print("(no messages yet)");
    for (const message of messages) {
      this.io.print(messageLine(message, this.#name(peer), this.config.format));
    }
  }

  #render(event: ClientEvent): void {
    switch (event.type) {
      case "message": {
        if (!this.#client?.contact(event.peer)?.username) {
          // A first message from a stranger: learn their name before showing it.
          void this.#client?.lookup(event.peer).catch(() => {}).finally(() =>
            this.#renderMessage(event)
          );
          return;
        }
        this.#renderMessage(event);
        return;
      }
      case "status":
        if (
          event.peer === this.#peer &&
          ["delivered", "read", "failed"].includes(event.message.status)
        ) {
          const what = event.message.status === "failed"
            ? "✗ not sent"
            : `✓✓ ${event.message.status}`;
          this.io.print(`  ${what}: "${preview(event.message.body)}"`);
        }
        return;
      case "typing": {
        if (!event.typing || event.peer !== this.#peer) return;
        const last = this.#lastTypingShown.get(event.peer) ?? 0;
        if (Date.now() - last < TYPING_SHOWN_EVERY_MS) return;
        this.#lastTypingShown.set(event.peer, Date.now());
        this.io.print(`  ${this.#name(event.peer)} is typing…`);
        return;
      }
      case "identity-changed": {
        const name = event.username ?? this.#name(event.peer);
        this.io.print(`⚠ WARNING: the safety number with ${name} has changed.`);
        this.io.print(
          "  They may have reinstalled or reset their account - or someone may be intercepting.",
        );
        this.io.print(`  Compare numbers again: /safety ${name}.`);
        if (event.wasVerified) {
          this.io.print(`  You had verified ${name}: sending is paused until /trust ${name}.`);
        }
        return;
      }
      case "connection": {
        const state = event.state === "online"
          ? "● online"
          : event.state === "offline"
          ? "○ offline, reconnecting…"
          : undefined;
        if (state && state !== this.#connection) {
          this.#connection = state;
          this.io.print(state);
        }
        return;
      }
      case "presence-granted":
        this.io.print(
          `${this.#name(event.peer)} lets you see their presence${
            event.lastSeen ? " and last-seen time" : ""
          } (/presence).`,
        );
        return;
      case "presence-withdrawn":
        this.io.print(`${this.#name(event.peer)} no longer shares their presence.`);
        return;
      case "own-device":
        this.io.print(
          `A new device joined your account: "${event.deviceName}" (${event.deviceId}).`,
        );
        return;
      case "undecryptable":
        this.io.print(
          `⚠ A message from ${
            this.#name(event.sender.accountId)
          } could not be decrypted (${event.reason}).`,
        );
        return;
      case "signed-out":
        if (event.reason !== "login-required") this.config.onEnded?.();
        this.io.print(
          event.reason === "revoked"
            ? "This device was removed from the account; its local data was deleted."
            : event.reason === "replaced"
            ? "This profile was opened elsewhere; this window stopped receiving."
            : event.reason === "login-required"
            ? "The session ended: /login again."
            : "Signed out.",
        );
        return;
      case "error":
        this.io.print(`! ${event.during}: ${errorLine(event.error, this.config.server)}`);
        return;
      case "group-message":
        if (!this.#client?.contact(event.message.from.accountId)?.username) {
          // A member we never talked to: learn their name before showing the line.
          void this.#client?.lookup(event.message.from.accountId).catch(() => {}).finally(() =>
            this.#renderGroupMessage(event)
          );
          return;
        }
        this.#renderGroupMessage(event);
        return;
      case "group-joined":
        this.io.print(`* ${this.#name(event.by.accountId)} added you to a group (/groups).`);
        return;
      case "group-members":
        if (event.removedSelf) {
          this.io.print(`* You were removed from #${this.#groupName(event.groupId)}.`);
          if (this.#group === event.groupId) this.#group = undefined;
        } else if (event.groupId === this.#group) {
          const names = (list: { accountId: string }[]) =>
            [...new Set(list.map((d) => this.#name(d.accountId)))].join(", ");
          if (event.added.length) this.io.print(`* joined: ${names(event.added)}`);
          if (event.removed.length) this.io.print(`* left: ${names(event.removed)}`);
        }
        return;
      case "group-typing":
        if (event.groupId === this.#group && event.typing) {
          this.io.print(`… ${this.#name(event.from.accountId)} is typing`);
        }
        return;
      case "group-read":
        if (event.groupId === this.#group) {
          this.io.print(`✓✓ read by ${this.#name(event.by)} (${event.ids.length})`);
        }
        return;
      case "group-renamed":
        this.io.print(`* group renamed to #${event.name}`);
        return;
      case "group-fork":
        this.io.print(
          `! #${this.#groupName(event.groupId)} has FORKED at epoch ${event.epoch}: members ` +
            "no longer share the same keys. Compare /fingerprint with the others.",
        );
        return;
      case "session":
      case "read":
      case "keys-replenished":
        return;
    }
  }

  #renderMessage(event: Extract<ClientEvent, { type: "message" }>): void {
    const name = this.#name(event.peer);
    if (event.peer === this.#peer) {
      this.io.print(messageLine(event.message, name, this.config.format));
      if (event.message.direction === "in") {
        void this.#client?.markRead(event.peer).catch(() => {});
      }
    } else if (event.message.direction === "in") {
      const file = event.message.file;
      this.io.print(
        file
          ? `(${name}) 📎 ${file.name} (${sizeText(file.plainSize)})    — /open ${name}, then ` +
            `/save ${event.message.id}`
          : `(${name}) ${event.message.body}    — /open ${name} to reply`,
      );
    }
  }

  #printError(error: unknown): void {
    if (error instanceof GuardynClientError) {
      this.io.print(`! ${errorLine(error, this.config.server)}`);
    } else this.io.print(`! unexpected error: ${(error as Error)?.message ?? String(error)}`);
  }

  async #newPassword(): Promise<string> {
    const password = await this.io.ask("Password (8+ characters): ", { secret: true });
    const again = await this.io.ask("Repeat it: ", { secret: true });
    if (password !== again) throw new GuardynClientError("BAD_INPUT", "the passwords differ");
    return password;
  }

  #requireClient(): GuardynClient {
    if (!this.#client) throw new GuardynClientError("NOT_SIGNED_IN", "the profile is not open");
    return this.#client;
  }

  #renderGroupMessage(event: Extract<ClientEvent, { type: "group-message" }>): void {
    if (event.groupId === this.#group) {
      this.io.print(this.#groupLine(event.message));
      return;
    }
    this.io.print(
      `(#${this.#groupName(event.groupId)}) ${this.#name(event.message.from.accountId)}: ` +
        `${event.message.body}    — /group ${this.#groupName(event.groupId)} to reply`,
    );
  }

  #groupOrFail(): string {
    if (!this.#group) {
      throw new GuardynClientError("BAD_INPUT", "no group is open: /group <name>");
    }
    return this.#group;
  }

  #groupName(groupId: string): string {
    return this.#client?.groups().find((g) => g.id === groupId)?.name || groupId.slice(0, 8);
  }

  #groupLine(message: GroupMessage): string {
    const who = message.direction === "out" ? "you" : this.#name(message.from.accountId);
    const time = new Date(message.serverTimestampMs).toISOString().slice(11, 16);
    const file = message.file
      ? ` 📎 ${message.file.name} (${sizeText(message.file.plainSize)}) — /save ${message.id}`
      : "";
    return `[${time}] ${who}: ${message.body}${file}`;
  }

  #peerOrFail(): string {
    if (!this.#peer) {
      throw new GuardynClientError("BAD_INPUT", "no conversation is open: /open <username>");
    }
    return this.#peer;
  }

  #arg(args: string[], index: number, usage: string): string {
    const value = args[index];
    if (!value) throw new GuardynClientError("BAD_INPUT", `usage: ${usage}`);
    return value;
  }

  #name(accountId: string): string {
    return this.#client?.contact(accountId)?.username ?? accountId;
  }
}

function preview(text: string): string {
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}
