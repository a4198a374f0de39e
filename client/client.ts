/**
 * GuardynClient: one device of one account. It owns the device's keys (in an encrypted profile
 * file), talks to the Guardyn services, and turns everything into end-to-end encrypted
 * envelopes before it leaves: the server sees ciphertext, addresses and times, never content.
 *
 * Every change to local state happens under one lock and is saved before its effect is visible
 * outside (an envelope leaves, an ack is sent, an event fires).
 */

import { dirname } from "node:path";
import { encodePublicKey, generateIdentityKeyPair } from "../crypto/mod.ts";
import type { AuthTokens } from "../proto/gen/guardyn/v1/auth.ts";
import { Platform } from "../proto/gen/guardyn/v1/common.ts";
import type { Envelope } from "../proto/gen/guardyn/v1/messaging.ts";
import { Api } from "./api.ts";
import type { BackoffOptions } from "./backoff.ts";
import { fromHex, randomId, toBase64 } from "./bytes.ts";
import { CallControl, type TurnServers } from "./call_control.ts";
import type { CallInfo } from "./calls.ts";
import type { ClientEvent } from "./client_events.ts";
import { type Contact, safetyNumberFor, safetyNumbersMatch } from "./contacts.ts";
import { type CallMedia, type Content, type IceCandidate, MAX_RECEIPT_IDS } from "./content.ts";
import { badInput, GuardynClientError } from "./errors.ts";
import { Listeners } from "./events.ts";
import type { StoredMessage } from "./history.ts";
import { Groups, type GroupSummary } from "./groups.ts";
import type { GroupMessage } from "./group_book.ts";
import { openBatch } from "./inbox.ts";
import { downloadFile, uploadFile, type UploadProgress } from "./files.ts";
import type { FileRef } from "./content.ts";
import type { KdfCost } from "./kdf.ts";
import {
  DEFAULT_KEY_POLICY,
  type KeyPolicy,
  KeyPublisher,
  type ReplenishReport,
} from "./key_publisher.ts";
import { waitForProvisioning } from "./linking.ts";
import { Mutex } from "./lock.ts";
import { Outbox, type PreparedMessage } from "./outbox.ts";
import { Persister } from "./persister.ts";
import { ProfileFile } from "./profile_file.ts";
import { type AccountInfo, ProfileState } from "./profile_state.ts";
import {
  formatLinkCode,
  newLinkKeyPair,
  openProvisioning,
  parseLinkCode,
  sealProvisioning,
} from "./provisioning.ts";
import { Receiver } from "./receiver.ts";
import {
  type PushRegistrationInfo,
  type PushRegistrationRequest,
  pushRegistrations,
  type PushSettings,
  pushSettings,
  registerPush,
  unregisterPush,
} from "./push.ts";
import {
  heartbeat,
  type PresenceInfo,
  type PresenceStatusName,
  type PresenceWatch,
  readPresence,
  registerGrant,
  revokeGrants,
  setPresence,
  watchPresence,
} from "./presence.ts";
import { newPresenceCapability, presenceGrantHash } from "../crypto/presence_grant.ts";
import { Sesame } from "./sesame.ts";
import { TokenKeeper, type TokenPair } from "./tokens.ts";
import { Transport, type WireProtocol } from "./transport.ts";

export interface GuardynClientOptions {
  /** "host:port" of the Guardyn API: its HTTP listener (HTTP_PORT), or GRPC_PORT for "grpc". */
  server: string;
  /** "web" (gRPC-Web over fetch, the default) or "grpc" (native gRPC with grpc-js). */
  protocol?: WireProtocol;
  /** Only half-duplex calls (ReceiveEvents + Acknowledge): the default in browsers. */
  halfDuplex?: boolean;
  /** The profile file of this device (created on first open). */
  profilePath: string;
  /** Unlocks the profile; never leaves this process. */
  passphrase: string;
  tls?: boolean;
  /** Shown in device lists; used when the profile is created. */
  deviceName?: string;
  platform?: Platform;
  /** Cost of deriving the profile key (new profiles only). */
  kdf?: KdfCost;
  keyPolicy?: Partial<KeyPolicy>;
  /** Send delivery receipts for incoming messages (default true). */
  deliveryReceipts?: boolean;
  /** Delete the profile when the server says this device was revoked (default true). */
  wipeOnRevoke?: boolean;
  backoff?: BackoffOptions;
  /** How long calls that are safe to repeat keep retrying while the server is unreachable. */
  retryForMs?: number;
  callTimeoutMs?: number;
  pingIntervalMs?: number;
  now?: () => number;
}

export interface DeviceInfo {
  deviceId: string;
  name: string;
  createdAtMs: number;
  lastSeenMs: number;
  current: boolean;
}

export interface LinkingSession {
  /** Show this to the signed-in device (as text or a QR code). */
  code: string;
  expiresAtMs: number;
  /** Resolves once this device is linked, its keys are published and its siblings know it. */
  completed: Promise<AccountInfo>;
  cancel(): void;
}

export interface ConversationSummary {
  peer: string;
  username?: string;
  last?: StoredMessage;
  unread: number;
}

/** How often a device that knows no sibling looks for one before sending. */
const OWN_DEVICES_RECHECK_MS = 60_000;
const USERNAME_PATTERN = /^[A-Za-z0-9_]{3,32}$/;
const ACCOUNT_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export class GuardynClient {
  readonly #options: GuardynClientOptions;
  readonly #file: ProfileFile;
  readonly #state: ProfileState;
  readonly #transport: Transport;
  readonly #tokens: TokenKeeper;
  readonly #api: Api;
  readonly #lock = new Mutex();
  readonly #persister: Persister;
  readonly #sesame: Sesame;
  readonly #outbox: Outbox;
  readonly #publisher: KeyPublisher;
  readonly #receiver: Receiver;
  readonly #groups: Groups;
  readonly #calls: CallControl;
  /** A listener that throws is reported as an error event (unless it failed on one). */
  readonly #events = new Listeners<ClientEvent>((error, event) => {
    if (event.type !== "error") this.#emitError("event listener", error);
  });
  readonly #now: () => number;
  #closed = false;
  #replenishTimer: ReturnType<typeof setTimeout> | undefined;
  #background = new Set<Promise<unknown>>();
  #ownDevicesCheckedAtMs = -Infinity;

  private constructor(options: GuardynClientOptions, file: ProfileFile, state: ProfileState) {
    this.#options = options;
    this.#file = file;
    this.#state = state;
    this.#now = options.now ?? Date.now;
    this.#transport = new Transport({
      address: options.server,
      tls: options.tls,
      callTimeoutMs: options.callTimeoutMs,
      ...(options.protocol ? { protocol: options.protocol } : {}),
      ...(options.halfDuplex !== undefined ? { halfDuplex: options.halfDuplex } : {}),
    });
    this.#persister = new Persister(() => this.#file.write(this.#state.encode()));
    this.#tokens = new TokenKeeper({
      refresh: async (refreshToken) => {
        const auth = this.#transport.auth;
        const response = await this.#transport.unary(auth.refresh.bind(auth), { refreshToken });
        return tokenPair(response.tokens, this.#now());
      },
      onRotated: async (pair) => {
        // Not under the lock: a refresh happens inside calls made under it.
        this.#state.tokens = pair;
        await this.#persist();
      },
      now: this.#now,
    });
    this.#tokens.set(state.tokens);
    this.#api = new Api(this.#transport, this.#tokens, {
      backoff: options.backoff,
      retryForMs: options.retryForMs,
      onRevoked: () => this.#signOut("revoked"),
    });
    this.#sesame = new Sesame({
      api: this.#api,
      state,
      now: this.#now,
      onSessionStarted: (session) => this.#emit({ type: "session", session }),
      onIdentityChanged: (peer, wasVerified) =>
        this.#emit({
          type: "identity-changed",
          peer,
          username: state.contacts.get(peer)?.username,
          wasVerified,
        }),
    });
    this.#outbox = new Outbox({
      api: this.#api,
      state,
      sesame: this.#sesame,
      lock: this.#lock,
      persist: () => this.#persist(),
    });
    this.#publisher = new KeyPublisher({
      api: this.#api,
      state,
      persist: () => this.#persist(),
      policy: { ...DEFAULT_KEY_POLICY, ...options.keyPolicy },
      now: this.#now,
    });
    this.#groups = new Groups({
      api: this.#api,
      state,
      me: () => {
        const { accountId, deviceId } = this.#me();
        return { accountId, deviceId };
      },
      emit: (event) => {
        this.#emit(event);
        this.#learnNames([event]);
      },
      now: this.#now,
    });
    this.#calls = new CallControl({
      api: this.#api,
      outbox: this.#outbox,
      me: () => {
        const { accountId, deviceId } = this.#me();
        return { accountId, deviceId };
      },
      emit: (event) => this.#emit(event),
      spawn: (during, task) => this.#spawn(during, task),
      now: this.#now,
    });
    this.#receiver = new Receiver({
      transport: this.#transport,
      tokens: this.#tokens,
      process: (envelopes) => this.#process(envelopes),
      onState: (connection, error) => this.#emit({ type: "connection", state: connection, error }),
      onDrained: () => this.#afterConnect(),
      onEnd: (reason) => this.#signOut(reason),
      onError: (error) => this.#emitError("receiving", error),
      backoff: options.backoff,
      pingIntervalMs: options.pingIntervalMs,
    });
  }

  /** Opens the device profile at `profilePath`, creating it (empty, signed out) if missing. */
  static async open(options: GuardynClientOptions): Promise<GuardynClient> {
    if (await ProfileFile.exists(options.profilePath)) {
      const file = await ProfileFile.open(options.profilePath, options.passphrase);
      try {
        return new GuardynClient(options, file, await ProfileState.decode(file.payload));
      } catch (error) {
        file.close();
        throw error;
      }
    }
    const deviceName = options.deviceName ?? "Guardyn CLI";
    if (deviceName.length < 1 || deviceName.length > 64 || /\p{Cc}/u.test(deviceName)) {
      throw badInput("a device name has 1..64 characters and no control characters");
    }
    const state = new ProfileState(deviceName);
    const file = await ProfileFile.create(
      options.profilePath,
      options.passphrase,
      state.encode(),
      options.kdf,
    );
    return new GuardynClient(options, file, state);
  }

  // --- state ------------------------------------------------------------------------------

  /** The signed-in account and device, or undefined. */
  get account(): AccountInfo | undefined {
    return this.#state.account ? { ...this.#state.account } : undefined;
  }

  get deviceName(): string {
    return this.#state.deviceName;
  }

  get server(): string {
    return this.#transport.address;
  }

  /** True while the receive stream is connected and its backlog handled. */
  get online(): boolean {
    return this.#receiver.drained && this.#receiver.running;
  }

  /** Subscribes to events; returns the function that unsubscribes. */
  on(listener: (event: ClientEvent) => void): () => void {
    return this.#events.on(listener);
  }

  // --- account ----------------------------------------------------------------------------

  /** Creates an account with this device as its first device, and publishes its keys. */
  register(username: string, password: string): Promise<AccountInfo> {
    return this.#lock.run(async () => {
      this.#requireFresh();
      checkUsername(username);
      const identity = await generateIdentityKeyPair();
      const auth = this.#transport.auth;
      const response = await this.#api.public(auth.register.bind(auth), {
        username,
        password,
        device: this.#registration(),
      }, { idempotent: false });
      this.#state.identity = identity;
      this.#signIn(
        {
          accountId: response.accountId,
          deviceId: response.deviceId,
          username: username.toLowerCase(),
        },
        response.tokens,
      );
      await this.#persist();
      await this.#publisher.publishAll();
      return this.account!;
    });
  }

  /**
   * Signs in again. A profile that already belongs to the account signs in as its own device
   * (tokens lost or expired). A fresh profile cannot use the account's identity key, so it must
   * be linked from a signed-in device instead - or pass `resetIdentity` to replace the account
   * identity key: every other device is signed out and contacts see a safety number change.
   */
  login(
    username: string,
    password: string,
    options: { resetIdentity?: boolean } = {},
  ): Promise<AccountInfo> {
    return this.#lock.run(async () => {
      checkUsername(username);
      const auth = this.#transport.auth;
      const current = this.#state.account;
      if (current && current.username !== username.toLowerCase()) {
        throw badInput(`this profile belongs to ${current.username}`);
      }
      if (current && this.#state.identity) {
        const response = await this.#api.public(auth.login.bind(auth), {
          username,
          password,
          device: this.#registration(),
          deviceId: current.deviceId,
        }, { idempotent: false });
        this.#signIn(current, response.tokens);
        await this.#persist();
        await this.#publisher.replenish();
        return this.account!;
      }
      if (!options.resetIdentity) {
        throw new GuardynClientError(
          "NOT_SIGNED_IN",
          "this profile has no keys for that account: link it from a signed-in device, " +
            "or log in with a reset identity (other devices are signed out, contacts are warned)",
        );
      }
      // A fresh profile becomes a new device; one whose reset failed half-way retries as itself.
      const response = await this.#api.public(auth.login.bind(auth), {
        username,
        password,
        device: this.#registration(),
        deviceId: current?.deviceId ?? "",
      }, { idempotent: false });
      this.#signIn(
        {
          accountId: response.accountId,
          deviceId: response.deviceId,
          username: username.toLowerCase(),
        },
        response.tokens,
      );
      await this.#persist();
      await this.#publisher.replaceIdentity(password);
      return this.account!;
    });
  }

  /**
   * Replaces the account identity key with a new one from this device (a lost or compromised
   * key). Every other device of the account is signed out; contacts see a safety number change.
   */
  resetIdentity(password: string): Promise<void> {
    return this.#lock.run(() => this.#publisher.replaceIdentity(password));
  }

  /** Signs this device out for good: removes it at the server and deletes the profile. */
  async logout(): Promise<void> {
    const auth = this.#transport.auth;
    await this.#api.authed(auth.logout.bind(auth), { allDevices: false }, { idempotent: true });
    await this.#wipe("logged-out");
  }

  /** The account's devices. */
  async listDevices(): Promise<DeviceInfo[]> {
    const auth = this.#transport.auth;
    const response = await this.#api.authed(auth.listDevices.bind(auth), {}, { idempotent: true });
    return response.devices.map((device) => ({
      deviceId: device.deviceId,
      name: device.name,
      createdAtMs: device.createdAtMs,
      lastSeenMs: device.lastSeenMs,
      current: device.current,
    }));
  }

  /** Removes another device of the account; its stream ends and its mailbox is purged. */
  async revokeDevice(deviceId: string): Promise<void> {
    const me = this.#me();
    if (deviceId === me.deviceId) throw badInput("use logout to remove this device");
    const auth = this.#transport.auth;
    await this.#api.authed(auth.revokeDevice.bind(auth), { deviceId }, { idempotent: false });
    await this.#lock.run(async () => {
      this.#state.sessions.dropDevice(me.accountId, deviceId);
      await this.#persist();
    });
  }

  // --- device linking ---------------------------------------------------------------------

  /**
   * New device, step 1: opens a provisioning session and returns the code to show. `completed`
   * resolves when a signed-in device approved it and this device is ready.
   */
  async startLinking(): Promise<LinkingSession> {
    this.#requireFresh();
    const auth = this.#transport.auth;
    const created = await this.#api.public(
      auth.createProvisioningSession.bind(auth),
      {},
      { idempotent: false },
    );
    const keyPair = await newLinkKeyPair();
    const code = formatLinkCode({ sessionId: created.sessionId, publicKey: keyPair.publicKey });
    const abort = new AbortController();
    const completed = (async () => {
      const delivered = await waitForProvisioning(
        this.#transport,
        created,
        abort.signal,
        this.#now,
      );
      const secrets = await openProvisioning(created.sessionId, keyPair, delivered.sealedBlob);
      const account = await this.#lock.run(async () => {
        this.#requireFresh();
        const response = await this.#api.public(auth.completeLinking.bind(auth), {
          provisioningToken: delivered.provisioningToken,
          device: this.#registration(),
        }, { idempotent: false });
        if (response.accountId !== secrets.accountId) {
          throw new GuardynClientError(
            "CRYPTO_FAILURE",
            "the server linked this device to another account than the one that approved it",
          );
        }
        this.#state.identity = secrets.identity;
        for (const contact of secrets.contacts) {
          this.#state.contacts.upsert(contact.accountId, contact.username);
          if (contact.identityKey) {
            this.#state.contacts.observeIdentity(
              contact.accountId,
              contact.identityKey,
              this.#now(),
            );
            this.#state.contacts.markVerified(contact.accountId, contact.verified);
          }
        }
        this.#signIn(
          {
            accountId: response.accountId,
            deviceId: response.deviceId,
            username: secrets.username,
          },
          response.tokens,
        );
        await this.#persist();
        await this.#publisher.publishAll();
        return this.account!;
      });
      await this.#announce();
      return account;
    })();
    completed.catch(() => {}); // the caller gets the failure from `completed`
    return { code, expiresAtMs: created.expiresAtMs, completed, cancel: () => abort.abort() };
  }

  /** Signed-in device, step 2: approves the new device that shows `code`. */
  approveLink(code: string): Promise<void> {
    return this.#lock.run(async () => {
      const me = this.#me();
      const parsed = parseLinkCode(code);
      const blob = await sealProvisioning(parsed, {
        accountId: me.accountId,
        username: me.username,
        identity: this.#state.identity!,
        contacts: this.#state.contacts.all(),
      });
      const auth = this.#transport.auth;
      await this.#api.authed(auth.sendProvisioning.bind(auth), {
        sessionId: parsed.sessionId,
        sealedBlob: blob,
      }, { idempotent: false });
    });
  }

  // --- connection -------------------------------------------------------------------------

  /** Opens the receive stream (and keeps it open until disconnect or close). */
  connect(): void {
    this.#me();
    if (this.#closed) throw new GuardynClientError("CLOSED", "the client is closed");
    this.#receiver.start();
  }

  /** Closes the receive stream after acknowledging what was handled. */
  async disconnect(): Promise<void> {
    await this.#receiver.stop();
  }

  /** Waits until everything the server delivered so far is handled and acknowledged. */
  flush(timeoutMs?: number): Promise<void> {
    return this.#receiver.flush(timeoutMs);
  }

  /** Tops up the keys at the server now (it also happens after each connect). */
  replenishKeys(): Promise<ReplenishReport> {
    return this.#lock.run(() => this.#publisher.replenish());
  }

  /** Re-reads our account's device list and starts sessions with new devices. */
  refreshOwnDevices(): Promise<string[]> {
    return this.#lock.run(async () => {
      this.#ownDevicesCheckedAtMs = this.#now();
      const me = this.#me();
      const directory = this.#transport.directory;
      const profile = await this.#api.authed(directory.getProfile.bind(directory), {
        lookup: { $case: "accountId", value: me.accountId },
      }, { idempotent: true });
      const current = new Set(profile.deviceIds.filter((id) => id !== me.deviceId));
      for (const device of this.#sesame.devicesOf(me.accountId)) {
        if (!current.has(device.deviceId)) {
          this.#state.sessions.dropDevice(me.accountId, device.deviceId);
        }
      }
      for (const deviceId of current) {
        if (this.#state.sessions.get(me.accountId, deviceId)) continue;
        try {
          await this.#sesame.establish(me.accountId, deviceId);
        } catch (error) {
          if (!(error instanceof GuardynClientError && error.code === "NOT_FOUND")) throw error;
        }
      }
      await this.#persist();
      return [...current];
    });
  }

  // --- contacts ---------------------------------------------------------------------------

  /** Finds a user by username (or account id) and remembers them as a contact. */
  lookup(who: string): Promise<Contact> {
    return this.#lock.run(async () => {
      this.#me();
      const directory = this.#transport.directory;
      const byId = !USERNAME_PATTERN.test(who) && ACCOUNT_ID_PATTERN.test(who);
      const profile = await this.#api.authed(directory.getProfile.bind(directory), {
        lookup: byId ? { $case: "accountId", value: who } : { $case: "username", value: who },
      }, { idempotent: true });
      this.#state.contacts.upsert(profile.accountId, profile.username);
      if (profile.identityKey.length > 0) {
        const verdict = this.#state.contacts.observeIdentity(
          profile.accountId,
          profile.identityKey,
          this.#now(),
        );
        if (verdict.kind === "changed") {
          this.#state.sessions.dropAccount(profile.accountId);
          this.#emit({
            type: "identity-changed",
            peer: profile.accountId,
            username: profile.username,
            wasVerified: verdict.wasVerified,
          });
        }
      }
      await this.#persist();
      return { ...this.#state.contacts.get(profile.accountId)! };
    });
  }

  contacts(): Contact[] {
    const me = this.#state.account?.accountId;
    return this.#state.contacts.all().filter((c) => c.accountId !== me).map((c) => ({ ...c }));
  }

  contact(who: string): Contact | undefined {
    const contact = this.#state.contacts.get(who) ?? this.#state.contacts.byUsername(who);
    return contact && { ...contact };
  }

  /** The 60-digit safety number with a contact (looked up first if unknown). */
  async safetyNumber(who: string): Promise<string> {
    const me = this.#me();
    let contact = this.contact(who);
    if (!contact?.identityKey) contact = await this.lookup(who);
    if (!contact.identityKey) throw badInput(`${who} has not published keys yet`);
    return safetyNumberFor(
      { accountId: me.accountId, identityKey: encodePublicKey(this.#state.identity!.publicKey) },
      { accountId: contact.accountId, identityKey: contact.identityKey },
    );
  }

  /** Compares the number the contact shows with ours; marks the contact verified on a match. */
  async verifySafetyNumber(who: string, theirs: string): Promise<boolean> {
    const ours = await this.safetyNumber(who);
    if (!safetyNumbersMatch(ours, theirs)) return false;
    await this.#lock.run(async () => {
      this.#state.contacts.markVerified(this.contact(who)!.accountId, true);
      await this.#persist();
    });
    return true;
  }

  /** Accepts a contact's changed identity key (sending to a verified contact resumes). */
  trustIdentity(who: string): Promise<void> {
    return this.#lock.run(async () => {
      const contact = this.contact(who);
      if (!contact) throw badInput(`unknown contact ${who}`);
      this.#state.contacts.acceptIdentity(contact.accountId);
      await this.#persist();
    });
  }

  // --- messages ---------------------------------------------------------------------------

  /** Encrypts and sends a text message to every device of `who` (and our other devices). */
  async sendText(who: string, body: string): Promise<StoredMessage> {
    return await this.transmit(await this.prepareText(who, body));
  }

  /**
   * Encrypts a text message and saves it as "sending" without sending it; `transmit` sends it.
   * Messages prepared in one order may be transmitted in another (the ratchet copes).
   */
  /**
   * Sends a file: encrypted while read, uploaded (resumably, with progress) to the media
   * service for the contact's account only, then announced in an E2EE message carrying its
   * key, digest and sizes. The caption defaults to the file's name.
   */
  async sendFile(
    who: string,
    path: string,
    options: { caption?: string; onProgress?: (progress: UploadProgress) => void } = {},
  ): Promise<StoredMessage> {
    const peer = await this.#resolve(who);
    this.#me();
    const file = await uploadFile(this.#api, path, {
      grantees: [peer],
      workDir: dirname(this.#options.profilePath),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    return await this.transmit(await this.prepareText(who, options.caption ?? file.name, file));
  }

  /**
   * Fetches a received (or sent) file, checks its digest and decrypts it to `path`: the file
   * appears there only whole and verified. Resolves with its size.
   */
  async saveFile(who: string, messageId: string, path: string): Promise<number> {
    const peer = await this.#resolve(who);
    const message = this.#state.history.find(peer, messageId);
    if (!message?.file) throw badInput(`message ${messageId} has no file`);
    return await downloadFile(this.#api, message.file, path);
  }

  async prepareText(who: string, body: string, file?: FileRef): Promise<PreparedMessage> {
    const peer = await this.#resolve(who);
    const me = this.#me();
    if (peer === me.accountId) throw badInput("write to a contact, not to yourself");
    await this.#knowOwnDevices();
    const id = randomId();
    const sentAtMs = this.#now();
    const message: StoredMessage = {
      id,
      direction: "out",
      body,
      sentAtMs,
      serverTimestampMs: sentAtMs,
      senderDeviceId: me.deviceId,
      status: "sending",
      identityWarning: false,
      ...(file ? { file } : {}),
    };
    const attached = file ? { file } : {};
    return await this.#outbox.prepare({
      recipient: peer,
      clientMessageId: id,
      content: { kind: "text", id, body, sentAtMs, ...attached },
      syncContent: { kind: "sent", to: peer, id, body, sentAtMs, ...attached },
      // Saved together with the ratchet state the encryption moved.
      onPrepared: () => this.#state.history.add(peer, message),
    });
  }

  /** Sends a prepared message; its history entry becomes "sent" (or "failed"). */
  async transmit(prepared: PreparedMessage): Promise<StoredMessage> {
    const peer = prepared.message.recipient;
    const id = prepared.message.clientMessageId;
    try {
      const response = await this.#outbox.transmit(prepared);
      // 0: a retry of a send every recipient already acknowledged; the server kept no time.
      const serverTime = response.serverTimestampMs > 0 ? response.serverTimestampMs : undefined;
      return await this.#updateOutgoing(peer, id, "sent", serverTime);
    } catch (error) {
      await this.#updateOutgoing(peer, id, "failed").catch(() => {});
      throw error;
    }
  }

  /** Tells `who` that we are (or stopped) typing: best effort, never stored by the server. */
  async sendTyping(who: string, typing: boolean): Promise<boolean> {
    const peer = await this.#resolve(who);
    try {
      const prepared = await this.#outbox.prepare({
        recipient: peer,
        content: { kind: "typing", typing },
        ephemeral: true,
      });
      const response = await this.#outbox.transmit(prepared);
      return response.envelopes.length > 0;
    } catch (error) {
      if (error instanceof GuardynClientError && error.code !== "CLOSED") return false;
      throw error;
    }
  }

  /** Marks a conversation read and sends read receipts (and read syncs to our devices). */
  async markRead(who: string): Promise<number> {
    const peer = await this.#resolve(who);
    const ids = await this.#lock.run(async () => {
      const changed = this.#state.history.markRead(peer);
      if (changed.length > 0) await this.#persist();
      return changed;
    });
    for (let i = 0; i < ids.length; i += MAX_RECEIPT_IDS) {
      const chunk = ids.slice(i, i + MAX_RECEIPT_IDS);
      await this.#sendControl(peer, { kind: "receipt", receipt: "read", ids: chunk }, {
        kind: "read",
        peer,
        ids: chunk,
      });
    }
    return ids.length;
  }

  /** Conversations, most recent first. */
  conversations(): ConversationSummary[] {
    return this.#state.history.conversations().map((peer) => ({
      peer,
      username: this.#state.contacts.get(peer)?.username,
      last: this.#state.history.messages(peer).at(-1),
      unread: this.#state.history.unread(peer).length,
    }));
  }

  /** The messages of a conversation, in server order. */
  messages(who: string): StoredMessage[] {
    const peer = this.contact(who)?.accountId ?? who;
    return this.#state.history.messages(peer).map((m) => ({ ...m }));
  }

  /** Stops the stream, closes the connection and the profile. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#replenishTimer);
    this.#calls.stop();
    await this.#receiver.stop().catch(() => {});
    await Promise.allSettled([...this.#background]);
    await this.#persister.save().catch(() => {});
    this.#transport.close();
    this.#file.close();
  }

  // --- internals --------------------------------------------------------------------------

  #me(): AccountInfo {
    const account = this.#state.account;
    if (!account || !this.#state.identity) {
      throw new GuardynClientError("NOT_SIGNED_IN", "this device is not signed in");
    }
    return account;
  }

  #requireFresh(): void {
    if (this.#state.account) {
      throw new GuardynClientError(
        "ALREADY_SIGNED_IN",
        `this profile already belongs to ${this.#state.account.username}`,
      );
    }
  }

  #registration() {
    return {
      name: this.#state.deviceName,
      platform: this.#options.platform ?? Platform.PLATFORM_CLI,
      registrationId: this.#state.registrationId,
    };
  }

  #signIn(account: AccountInfo, tokens: AuthTokens | undefined): void {
    const pair = tokenPair(tokens, this.#now());
    this.#state.account = account;
    this.#state.tokens = pair;
    this.#tokens.set(pair);
  }

  async #persist(): Promise<void> {
    await this.#persister.save();
  }

  #emit(event: ClientEvent): void {
    this.#events.emit(event);
  }

  #emitError(during: string, error: unknown): void {
    const failure = error instanceof GuardynClientError
      ? error
      : new GuardynClientError("UNKNOWN_SERVER_ERROR", String(error), { cause: error });
    this.#emit({ type: "error", during, error: failure });
  }

  // --- calls ------------------------------------------------------------------------------

  /**
   * Calls `who`: every device of theirs rings (an urgent push wakes sleeping ones) until one
   * answers or declines, we end it, or `ringMs` passes. `sdp` is our WebRTC offer. Answers,
   * ICE candidates and the end arrive as "call-*" events.
   */
  async startCall(
    who: string,
    options: { sdp: string; media?: CallMedia; ringMs?: number },
  ): Promise<CallInfo> {
    const peer = await this.#resolve(who);
    this.#me();
    return await this.#calls.start(peer, options);
  }

  /** Answers a ringing call with our SDP answer; our other devices stop ringing. */
  answerCall(callId: string, sdp: string): Promise<CallInfo> {
    return this.#calls.answer(callId, sdp);
  }

  /** Declines a ringing call, cancels our ringing one, or hangs up. */
  endCall(callId: string): Promise<CallInfo> {
    return this.#calls.end(callId);
  }

  /** Sends our ICE candidates to the other end (trickle ICE; best effort). */
  sendIceCandidates(callId: string, candidates: IceCandidate[]): Promise<void> {
    return this.#calls.ice(callId, candidates);
  }

  /** Calls ringing or in progress on this device. */
  calls(): CallInfo[] {
    return this.#calls.list();
  }

  /** TURN servers (short-lived credentials) for the app's RTCPeerConnection. */
  turnServers(): Promise<TurnServers> {
    return this.#calls.turnServers();
  }

  // --- push -------------------------------------------------------------------------------

  /** The server's VAPID key and the push platforms it serves. */
  pushSettings(): Promise<PushSettings> {
    return pushSettings(this.#api);
  }

  /**
   * Asks the server to wake this device with a content-free push when mail or a call waits
   * and no stream is open (Web Push subscription or UnifiedPush endpoint).
   */
  registerPush(request: PushRegistrationRequest): Promise<void> {
    return registerPush(this.#api, request);
  }

  /** Stops pushes to this device. */
  unregisterPush(): Promise<void> {
    return unregisterPush(this.#api);
  }

  /** Which of this account's devices are registered for push (tokens are never returned). */
  pushRegistrations(): Promise<PushRegistrationInfo[]> {
    return pushRegistrations(this.#api);
  }

  // --- presence ---------------------------------------------------------------------------

  /**
   * Lets `who` see our presence (status and text; with `lastSeen`, also when we were last
   * online). A fresh capability goes to their devices end-to-end encrypted; the server only
   * gets its hash, bound to their account. Granting again replaces the previous grant.
   */
  async allowPresence(who: string, options: { lastSeen?: boolean } = {}): Promise<void> {
    const peer = await this.#resolve(who);
    this.#me();
    const lastSeen = options.lastSeen ?? false;
    const capability = newPresenceCapability();
    const grantHash = presenceGrantHash(capability, peer);
    await registerGrant(this.#api, grantHash, lastSeen);
    const previous = this.#state.presence.given.get(peer);
    if (previous) await revokeGrants(this.#api, [previous.grantHash]);
    await this.#lock.run(async () => {
      this.#state.presence.give(peer, { grantHash, lastSeen });
      await this.#persist();
    });
    await this.#sendControl(
      peer,
      { kind: "presence", capability: toBase64(capability), lastSeen },
      { kind: "presence-given", to: peer, grantHash: toBase64(grantHash), lastSeen },
    );
  }

  /** Stops `who` seeing our presence (at once, on every open watch); false if never allowed. */
  async disallowPresence(who: string): Promise<boolean> {
    const peer = await this.#resolve(who);
    const given = this.#state.presence.given.get(peer);
    if (!given) return false;
    await revokeGrants(this.#api, [given.grantHash]);
    await this.#lock.run(async () => {
      this.#state.presence.give(peer, undefined);
      await this.#persist();
    });
    // Tell them to forget the capability (it opens nothing any more either way).
    await this.#sendControl(peer, { kind: "presence", capability: "", lastSeen: false });
    return true;
  }

  /** Accounts that let us see their presence. */
  presenceGrants(): { accountId: string; lastSeen: boolean }[] {
    return [...this.#state.presence.received].map(([accountId, g]) => ({
      accountId,
      lastSeen: g.lastSeen,
    }));
  }

  /** Sets how our account appears to those we allowed ("invisible" hides it from all). */
  setPresence(status: PresenceStatusName, customText = ""): Promise<void> {
    return setPresence(this.#api, status, customText);
  }

  /**
   * Keeps this device counted as online: a heartbeat now and then at the interval the server
   * asks for, until the returned function is called or the client closes.
   */
  startPresence(): () => void {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const beat = async () => {
      if (stopped || this.#closed) return;
      let next = 30_000;
      try {
        next = await heartbeat(this.#api);
      } catch (error) {
        if (!this.#closed) this.#emitError("sending a presence heartbeat", error);
      }
      if (!stopped && !this.#closed) timer = setTimeout(beat, next);
    };
    void beat();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  /** Reads the presence of accounts (ours, or ones that allowed us; others read as hidden). */
  async presenceOf(who: readonly string[]): Promise<PresenceInfo[]> {
    const peers = await Promise.all(who.map((w) => this.#resolve(w)));
    return await readPresence(this.#api, this.#state.presence, this.#me().accountId, peers);
  }

  /** Watches accounts: a snapshot entry each, then every change, until closed. */
  async watchPresence(
    who: readonly string[],
    onChange: (presence: PresenceInfo) => void,
  ): Promise<PresenceWatch> {
    const peers = await Promise.all(who.map((w) => this.#resolve(w)));
    return watchPresence(
      this.#api,
      this.#state.presence,
      this.#me().accountId,
      peers,
      onChange,
      (error) => this.#emitError("watching presence", error),
    );
  }

  // --- groups -----------------------------------------------------------------------------

  /** Creates a group with these contacts (usernames or account ids; all their devices). */
  async createGroup(name: string, members: readonly string[]): Promise<GroupSummary> {
    const accountIds = await Promise.all(members.map((who) => this.#resolve(who)));
    return await this.#groupChange(() => this.#groups.create(name, accountIds));
  }

  async addToGroup(groupId: string, members: readonly string[]): Promise<void> {
    const accountIds = await Promise.all(members.map((who) => this.#resolve(who)));
    await this.#groupChange(() => this.#groups.add(groupId, accountIds));
  }

  async removeFromGroup(groupId: string, members: readonly string[]): Promise<void> {
    const accountIds = await Promise.all(members.map((who) => this.#resolve(who)));
    await this.#groupChange(() => this.#groups.remove(groupId, accountIds));
  }

  leaveGroup(groupId: string): Promise<void> {
    return this.#groupChange(() => this.#groups.leave(groupId));
  }

  renameGroup(groupId: string, name: string): Promise<void> {
    return this.#groupChange(() => this.#groups.rename(groupId, name));
  }

  sendGroupText(groupId: string, body: string): Promise<GroupMessage> {
    return this.#groupChange(() => this.#groups.sendText(groupId, body));
  }

  /**
   * Sends a file to a group: encrypted while read, uploaded for the group's members (the media
   * service checks membership when each one downloads it), announced in an MLS message.
   */
  async sendGroupFile(
    groupId: string,
    path: string,
    options: { caption?: string; onProgress?: (progress: UploadProgress) => void } = {},
  ): Promise<GroupMessage> {
    this.#me();
    if (!this.#state.groups.get(groupId) || this.#state.groups.get(groupId)!.left) {
      throw badInput(`not in group ${groupId}`);
    }
    const file = await uploadFile(this.#api, path, {
      grantees: [],
      group: fromHex(groupId),
      workDir: dirname(this.#options.profilePath),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    return await this.#groupChange(() =>
      this.#groups.sendText(groupId, options.caption ?? file.name, file)
    );
  }

  /** Fetches a group message's file, checks and decrypts it to `path`; resolves with its size. */
  async saveGroupFile(groupId: string, messageId: string, path: string): Promise<number> {
    const message = this.#state.groups.get(groupId)?.messages.find((m) => m.id === messageId);
    if (!message?.file) throw badInput(`group message ${messageId} has no file`);
    return await downloadFile(this.#api, message.file, path);
  }

  /** Typing in a group: to the other members' open devices only, never stored. */
  sendGroupTyping(groupId: string, typing: boolean): Promise<void> {
    return this.#groupChange(() => this.#groups.sendTyping(groupId, typing));
  }

  /** Marks a group's incoming messages read and sends the read receipt; returns how many. */
  markGroupRead(groupId: string): Promise<number> {
    return this.#groupChange(() => this.#groups.markRead(groupId));
  }

  /** A short fingerprint every member can compare: equal iff the group has not forked. */
  groupFingerprint(groupId: string): Promise<string> {
    return this.#lock.run(() => this.#groups.fingerprint(groupId));
  }

  groups(): GroupSummary[] {
    return this.#groups.list();
  }

  groupMessages(groupId: string): GroupMessage[] {
    return this.#groups.messages(groupId);
  }

  /** A group operation under the lock, saved before it returns. */
  #groupChange<T>(change: () => Promise<T>): Promise<T> {
    this.#me();
    return this.#lock.run(async () => {
      try {
        return await change();
      } finally {
        await this.#persist();
      }
    });
  }

  /** Runs a task in the background, reporting its failure as an event. */
  #spawn(during: string, task: () => Promise<unknown>): void {
    const running = task().catch((error) => {
      if (!this.#closed) this.#emitError(during, error);
    }).finally(() => this.#background.delete(running));
    this.#background.add(running);
  }

  async #resolve(who: string): Promise<string> {
    const known = this.contact(who);
    if (known) return known.accountId;
    if (who === this.#state.account?.accountId) return who;
    return (await this.lookup(who)).accountId;
  }

  async #updateOutgoing(
    peer: string,
    id: string,
    status: "sent" | "failed",
    serverTimestampMs?: number,
  ): Promise<StoredMessage> {
    return await this.#lock.run(() => {
      const message = this.#state.history.advance(peer, id, status, serverTimestampMs);
      if (!message) throw badInput(`no message ${id}`);
      // Only a display state: saved with the next write (coalesced), not waited for.
      this.#persister.save().catch((error) => this.#emitError("saving the profile", error));
      const copy = { ...message };
      this.#emit({ type: "status", peer, message: copy });
      return Promise.resolve(copy);
    });
  }

  async #sendControl(peer: string, content: Content, syncContent?: Content): Promise<void> {
    // A verified contact whose key changed gets nothing, receipts included, until accepted.
    if (this.#state.contacts.get(peer)?.blocked) return;
    const prepared = await this.#outbox.prepare({
      recipient: peer,
      content,
      syncContent,
      silent: true,
    });
    await this.#outbox.transmit(prepared);
  }

  /** A freshly linked device says hello to the account's other devices. */
  async #announce(): Promise<void> {
    const me = this.#me();
    const prepared = await this.#outbox.prepare({
      recipient: me.accountId,
      content: { kind: "hello", deviceName: this.#state.deviceName },
      silent: true,
    });
    await this.#outbox.transmit(prepared);
  }

  /**
   * The server checks sync copies for completeness only when there are some: with no known
   * sibling device we could be missing one silently, so look again (at most once a minute).
   */
  async #knowOwnDevices(): Promise<void> {
    const me = this.#me();
    if (this.#sesame.devicesOf(me.accountId).length > 0) return;
    if (this.#now() - this.#ownDevicesCheckedAtMs < OWN_DEVICES_RECHECK_MS) return;
    await this.refreshOwnDevices();
  }

  #afterConnect(): void {
    this.#spawn("refreshing own devices", () => this.refreshOwnDevices());
    this.#scheduleReplenish(0);
  }

  #scheduleReplenish(delayMs: number): void {
    if (this.#replenishTimer !== undefined || this.#closed) return;
    this.#replenishTimer = setTimeout(() => {
      this.#replenishTimer = undefined;
      this.#spawn("replenishing keys", async () => {
        const report = await this.replenishKeys();
        if (
          report.oneTimeAdded + report.kemAdded + report.keyPackagesAdded > 0 ||
          report.signedRotated
        ) {
          this.#emit({ type: "keys-replenished", report });
        }
      });
    }, delayMs);
  }

  /** Handles a batch of envelopes; returns the ids to acknowledge once the state is saved. */
  async #process(envelopes: Envelope[]): Promise<string[]> {
    const { ack, outcome, newSessions } = await this.#lock.run(async () => {
      const oneToOne = envelopes.filter((e) => !isGroupEnvelope(e));
      const result = await openBatch(this.#state, this.#sesame, this.#me(), oneToOne);
      for (const envelope of envelopes.filter(isGroupEnvelope)) {
        result.ack.push(envelope.id);
        if (this.#state.seenEnvelopes.has(envelope.id)) continue;
        try {
          await this.#groups.handle(envelope);
        } catch (error) {
          // Acknowledged and dropped, as an undecryptable 1:1 envelope is.
          result.outcome.events.push({
            type: "undecryptable",
            sender: { ...envelope.sender! },
            reason: (error as Error).message,
          });
        }
        this.#state.seenEnvelopes.add(envelope.id);
      }
      await this.#persist();
      return result;
    });
    for (const event of outcome.events) this.#emit(event);
    for (const signal of outcome.calls) {
      this.#calls.receive(signal.from, signal.serverTimestampMs, signal.call, signal.signal);
    }
    this.#learnNames(outcome.events);
    for (const event of outcome.events) {
      if (event.type !== "own-device") continue;
      // A device just linked to our account joins our groups (added by us, a sibling).
      this.#spawn(
        "adding a linked device to our groups",
        () => this.#groupChange(() => this.#groups.addOwnDevice(event.deviceId)),
      );
    }
    if (this.#options.deliveryReceipts !== false) {
      for (const [peer, ids] of outcome.delivered) {
        for (let i = 0; i < ids.length; i += MAX_RECEIPT_IDS) {
          const chunk = ids.slice(i, i + MAX_RECEIPT_IDS);
          this.#spawn(
            "sending delivery receipts",
            () => this.#sendControl(peer, { kind: "receipt", receipt: "delivered", ids: chunk }),
          );
        }
      }
    }
    // Someone used our one-time prekeys: top up soon (batched with other first contacts).
    if (newSessions > 0) this.#scheduleReplenish(500);
    return ack;
  }

  /** A first message from a stranger: look their username up in the background. */
  #learnNames(events: readonly ClientEvent[]): void {
    const unnamed = new Set<string>();
    const unknown = (accountId: string) =>
      !this.#state.contacts.get(accountId)?.username &&
      accountId !== this.#state.account?.accountId;
    for (const event of events) {
      if (event.type === "message" && unknown(event.peer)) unnamed.add(event.peer);
      // Group members may be strangers: learn their names to show them.
      if (event.type === "group-message" && unknown(event.message.from.accountId)) {
        unnamed.add(event.message.from.accountId);
      }
      if (event.type === "group-joined" && unknown(event.by.accountId)) {
        unnamed.add(event.by.accountId);
      }
      if (event.type === "group-members") {
        for (const d of event.added) if (unknown(d.accountId)) unnamed.add(d.accountId);
      }
    }
    for (const peer of unnamed) this.#spawn("looking up a contact", () => this.lookup(peer));
  }

  #signOut(reason: "revoked" | "replaced" | "login-required"): void {
    if (reason === "revoked" && this.#options.wipeOnRevoke !== false) {
      void this.#wipe("revoked").catch(() => {});
      return;
    }
    this.#emit({ type: "signed-out", reason });
  }

  /** Deletes the profile; the device's keys and history are gone for good. */
  async #wipe(reason: "revoked" | "logged-out"): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#replenishTimer);
    // Not awaited: the receiver may be the one reporting the revocation.
    void this.#receiver.stop().catch(() => {});
    this.#transport.close();
    await this.#file.destroy();
    this.#emit({ type: "signed-out", reason });
  }
}

function tokenPair(tokens: AuthTokens | undefined, now: number): TokenPair {
  if (!tokens?.accessToken || !tokens.refreshToken) {
    throw new GuardynClientError("UNKNOWN_SERVER_ERROR", "the server sent no tokens");
  }
  return {
    accessToken: tokens.accessToken,
    accessExpiresAtMs: tokens.accessTokenExpiresAtMs,
    refreshToken: tokens.refreshToken,
    refreshExpiresAtMs: tokens.refreshTokenExpiresAtMs,
    receivedAtMs: now,
  };
}

function checkUsername(username: string): void {
  if (!USERNAME_PATTERN.test(username)) {
    throw badInput("a username has 3..32 characters: letters, digits and _");
  }
}

/** MLS envelope types (welcome, private and public messages) go to the group engine. */
function isGroupEnvelope(envelope: Envelope): boolean {
  return envelope.type >= 3 && envelope.type <= 5;
}
