/**
 * Group chat over MLS (crypto/mls.ts) with the server as delivery service (GroupService).
 *
 * - Every device is its own leaf; adding an account adds all its addressable devices (their
 *   key packages claimed through ClaimKeyPackages), and our own other devices join every group
 *   we create.
 * - Commits are applied strictly in server order: a commit names its epoch, older ones are
 *   already applied, a gap is filled with FetchCommits first.
 * - A change of ours is an intent: on STALE_EPOCH the client drops its pending commit, applies
 *   the winner, re-creates the change and sends it again, so it ends applied or reported
 *   failed, never silently dropped.
 * - Application messages carry a fingerprint of the sender's epoch authenticator; a receiver
 *   at the same epoch with another one has forked from the sender: that is reported (event
 *   "group-fork") and counted.
 *
 * The caller holds the client's lock around every method (state changes are saved together).
 */

import {
  GroupError,
  inspectPublicMessage,
  MlsGroup,
  type PendingCommit,
  signLeafBinding,
  verifyLeafBinding,
  welcomeRecipients,
} from "../crypto/mod.ts";
import type { Envelope } from "../proto/gen/guardyn/v1/messaging.ts";
import type { Api } from "./api.ts";
import { toHex, utf8Decode, utf8Encode } from "./bytes.ts";
import type { ClientEvent } from "./client_events.ts";
import { checkFileRef, type FileRef, pickFile } from "./content.ts";
import { badInput, GuardynClientError } from "./errors.ts";
import type { GroupMessage, GroupRecord } from "./group_book.ts";
import { KEY_PACKAGE_SUITE } from "./key_package_vault.ts";
import type { ProfileState } from "./profile_state.ts";

const ENVELOPE_MLS_WELCOME = 3;
const ENVELOPE_MLS_PRIVATE = 4;
const ENVELOPE_MLS_PUBLIC = 5;
/** Attempts of one change against commits that keep winning the epoch. */
const INTENT_ATTEMPTS = 8;
const FETCH_PAGE = 100;
/** Message ids one read receipt names. */
const MAX_RECEIPT_IDS = 500;

export interface DeviceAddress {
  accountId: string;
  deviceId: string;
}

/** What travels inside an MLS application message (JSON, then encrypted). */
type GroupContent =
  | { kind: "text"; id: string; body: string; sentAtMs: number; fp: string; file?: FileRef }
  | { kind: "name"; name: string; fp: string }
  /** Typing, sent ephemeral: to open streams only, never stored. */
  | { kind: "typing"; typing: boolean; fp: string }
  /** Read receipts: these messages (by id) were read on one of the reader's devices. */
  | { kind: "read"; ids: string[]; fp: string };

export interface GroupSummary {
  id: string;
  name: string;
  epoch: number;
  /** Member devices; `verified`: you compared safety numbers with that account. */
  members: (DeviceAddress & { verified: boolean })[];
  forks: number;
  active: boolean;
}

export interface GroupsDeps {
  api: Api;
  state: ProfileState;
  me: () => DeviceAddress;
  emit: (event: ClientEvent) => void;
  now: () => number;
}

export class Groups {
  readonly #deps: GroupsDeps;
  /** Identity keys of group members we have no contact for, fetched from the directory. */
  readonly #identityKeys = new Map<string, Uint8Array>();

  constructor(deps: GroupsDeps) {
    this.#deps = deps;
  }

  list(): GroupSummary[] {
    return this.#deps.state.groups.all().map((g) => this.#summaryOf(g));
  }

  messages(groupId: string): GroupMessage[] {
    return [...(this.#record(groupId).messages)];
  }

  /** Creates a group with these accounts (all their devices) and our own other devices. */
  async create(name: string, accountIds: readonly string[]): Promise<GroupSummary> {
    checkName(name);
    const me = this.#deps.me();
    const identity = this.#deps.state.identity!;
    const address = identityOf(me);
    const group = await MlsGroup.create({
      deviceAddress: address,
      bind: (key) => signLeafBinding(identity, address, key),
      ...this.#memberCheck(),
    });
    const id = toHex(group.groupId);
    await this.#deps.api.authed(this.#g.createGroup.bind(this.#g), {
      groupId: group.groupId,
      cipherSuite: KEY_PACKAGE_SUITE,
      groupInfo: await group.groupInfo(),
    }, { idempotent: true });
    this.#deps.state.groups.put({ id, name, state: group.export(), messages: [], forks: 0 });
    await this.add(id, [...new Set([...accountIds, me.accountId])]);
    return this.#summaryOf(this.#record(id));
  }

  /** Adds every addressable device of these accounts that is not a member yet. */
  add(groupId: string, accountIds: readonly string[]): Promise<void> {
    return this.#add(groupId, { accountIds: [...accountIds], devices: [] });
  }

  /**
   * Adds our newly linked device to every group this device is in (a sibling does it; if
   * several try, the others find it already added).
   */
  async addOwnDevice(deviceId: string): Promise<number> {
    const me = this.#deps.me();
    let added = 0;
    for (const record of this.#deps.state.groups.all()) {
      if (record.left || !this.#cached(record).active) continue;
      const group = await this.#load(record);
      if (
        !group.active || group.roster().some((m) => m.identity === `${me.accountId}:${deviceId}`)
      ) {
        continue;
      }
      await this.#add(record.id, {
        accountIds: [],
        devices: [{ accountId: me.accountId, deviceId }],
      });
      added++;
    }
    return added;
  }

  async #add(
    groupId: string,
    wanted: { accountIds: string[]; devices: DeviceAddress[] },
  ): Promise<void> {
    await this.#intent(groupId, async (group) => {
      const members = new Set(group.roster().map((m) => m.identity));
      // Devices already in the group are not claimed: their one-time packages are not wasted.
      const devices = wanted.devices.filter((d) => !members.has(identityOf(d)));
      if (wanted.accountIds.length === 0 && devices.length === 0) return undefined;
      const claimed = await this.#deps.api.authed(this.#k.claimKeyPackages.bind(this.#k), {
        cipherSuite: KEY_PACKAGE_SUITE,
        accountIds: wanted.accountIds,
        devices,
      }, { idempotent: false });
      const fresh = claimed.keyPackages.filter((p) => !members.has(identityOf(p.device!)));
      if (fresh.length === 0) return undefined;
      return {
        pending: await group.add(fresh.map((p) => p.keyPackage)),
        added: fresh.map((p) => ({ ...p.device! })),
        removed: [],
      };
    });
    // New members learn the name from a message of the new epoch.
    await this.#sendContent(groupId, { kind: "name", name: this.#record(groupId).name, fp: "" });
  }

  /** Removes every device of these accounts. */
  async remove(groupId: string, accountIds: readonly string[]): Promise<void> {
    const leaving = new Set(accountIds);
    await this.#intent(groupId, (group) => {
      const leaves = group.roster().filter((m) => leaving.has(m.identity.split(":")[0]!));
      if (leaves.length === 0) return Promise.resolve(undefined);
      return group.remove(leaves.map((m) => m.leafIndex)).then((pending) => ({
        pending,
        added: [],
        removed: leaves.map((m) => deviceOfIdentity(m.identity)),
      }));
    });
  }

  /** Renames the group for every member (an application message: the server never sees it). */
  async rename(groupId: string, name: string): Promise<void> {
    checkName(name);
    this.#record(groupId).name = name;
    await this.#sendContent(groupId, { kind: "name", name, fp: "" });
  }

  /** Sends a text to every other member device. */
  /** A text (with `file`, the caption of an uploaded file) to every member device. */
  async sendText(groupId: string, body: string, file?: FileRef): Promise<GroupMessage> {
    if (body.length === 0 || body.length > 65_536) {
      throw badInput("a message has 1..65536 characters");
    }
    const id = crypto.randomUUID();
    const sentAtMs = this.#deps.now();
    const attached = file ? { file: pickFile(file) } : {};
    const response = await this.#sendContent(groupId, {
      kind: "text",
      id,
      body,
      sentAtMs,
      fp: "",
      ...attached,
    });
    const message: GroupMessage = {
      id,
      direction: "out",
      from: this.#deps.me(),
      body,
      sentAtMs,
      serverTimestampMs: response.serverTimestampMs || sentAtMs,
      ...attached,
    };
    this.#deps.state.groups.addMessage(groupId, message);
    return message;
  }

  /**
   * Leaves: MLS members cannot commit their own removal, so this sends a Remove proposal for
   * our leaf that another member commits; the group is forgotten here at once.
   */
  async leave(groupId: string): Promise<void> {
    const record = this.#record(groupId);
    const group = await this.#load(record);
    const proposal = await group.proposeRemoveSelf();
    await this.#deps.api.authed(this.#g.leaveGroup.bind(this.#g), {
      groupId: group.groupId,
      epoch: Number(group.epoch),
      removeProposal: proposal,
    }, { idempotent: true });
    record.left = true;
    record.state = group.export();
  }

  /** A short fingerprint of the epoch authenticator: equal on every member iff no fork. */
  async fingerprint(groupId: string): Promise<string> {
    const group = await this.#load(this.#record(groupId));
    return fingerprintOf(group);
  }

  /** Handles one MLS envelope from the mailbox (in mailbox order). */
  async handle(envelope: Envelope): Promise<void> {
    switch (envelope.type) {
      case ENVELOPE_MLS_WELCOME:
        return await this.#welcome(envelope);
      case ENVELOPE_MLS_PUBLIC:
        return await this.#handshake(envelope);
      case ENVELOPE_MLS_PRIVATE:
        return await this.#application(envelope);
    }
  }

  // --- internals ------------------------------------------------------------------------

  get #g() {
    return this.#deps.api.transport.groups;
  }

  get #k() {
    return this.#deps.api.transport.keys;
  }

  #record(groupId: string): GroupRecord {
    const record = this.#deps.state.groups.get(groupId);
    if (!record) throw badInput(`no group ${groupId}`);
    return record;
  }

  #load(record: GroupRecord): Promise<MlsGroup> {
    return MlsGroup.restore(record.state, this.#memberCheck());
  }

  /**
   * Every leaf must be signed by the identity key the directory lists for the account its
   * credential names (crypto/mls_binding.ts): nobody, member or server, can add a device in
   * someone else's name.
   */
  #memberCheck() {
    return {
      validateMember: async (identity: string, key: Uint8Array, binding?: Uint8Array) => {
        const { accountId } = deviceOfIdentity(identity);
        const identityKey = accountId ? await this.#identityKeyOf(accountId) : undefined;
        return identityKey !== undefined &&
          await verifyLeafBinding(identityKey, identity, key, binding);
      },
    };
  }

  async #identityKeyOf(accountId: string): Promise<Uint8Array | undefined> {
    const { state } = this.#deps;
    if (accountId === state.account?.accountId) return state.identity?.publicKey;
    const known = state.contacts.get(accountId)?.identityKey ?? this.#identityKeys.get(accountId);
    if (known) return known;
    const directory = this.#deps.api.transport.directory;
    const profile = await this.#deps.api.authed(directory.getProfile.bind(directory), {
      lookup: { $case: "accountId", value: accountId },
    }, { idempotent: true }).catch(() => undefined);
    if (!profile?.identityKey.length) return undefined;
    this.#identityKeys.set(accountId, profile.identityKey);
    return profile.identityKey;
  }

  #summaryOf(record: GroupRecord): GroupSummary {
    // The roster and epoch are saved in the MLS state; decoding it is cheap enough here.
    const summary = { id: record.id, name: record.name, forks: record.forks };
    const meta = this.#cached(record);
    const contacts = this.#deps.state.contacts;
    const members = meta.members.map((d) => ({
      ...d,
      verified: contacts.get(d.accountId)?.verified === true,
    }));
    return { ...summary, ...meta, members };
  }

  #cached(record: GroupRecord): { epoch: number; members: DeviceAddress[]; active: boolean } {
    const meta = GROUP_META.get(record.state);
    return meta ?? { epoch: 0, members: [], active: !record.left };
  }

  #save(record: GroupRecord, group: MlsGroup): void {
    record.state = group.export();
    GROUP_META.set(record.state, {
      epoch: Number(group.epoch),
      members: group.active ? group.roster().map((m) => deviceOfIdentity(m.identity)) : [],
      active: group.active && !record.left,
    });
  }

  /**
   * Runs a change until the server accepts it: make the commit, send it, and on STALE_EPOCH
   * apply the commits that won, then make it again from the new epoch.
   */
  async #intent(
    groupId: string,
    make: (group: MlsGroup) => Promise<
      { pending: PendingCommit; added: DeviceAddress[]; removed: DeviceAddress[] } | undefined
    >,
  ): Promise<void> {
    const record = this.#record(groupId);
    for (let attempt = 1;; attempt++) {
      const group = await this.#load(record);
      if (group.pendingCommit) group.discardPendingCommit();
      const change = await make(group);
      if (!change) return;
      try {
        await this.#deps.api.authed(this.#g.sendCommit.bind(this.#g), {
          groupId: group.groupId,
          epoch: Number(change.pending.epoch),
          commit: change.pending.commit,
          welcome: change.pending.welcome ?? new Uint8Array(),
          addedDevices: change.added,
          removedDevices: change.removed,
          groupInfo: change.pending.groupInfo,
          clientMessageId: `commit-${crypto.randomUUID()}`,
        }, { idempotent: true });
        group.mergePendingCommit();
        this.#save(record, group);
        this.#emitChange(record, group, change.added, change.removed);
        return;
      } catch (error) {
        group.discardPendingCommit();
        const stale = error instanceof GuardynClientError && error.code === "STALE_EPOCH";
        if (!stale || attempt >= INTENT_ATTEMPTS) throw error;
        await this.#catchUp(record, group);
      }
    }
  }

  /** Applies every commit the server has after our epoch. */
  async #catchUp(record: GroupRecord, group: MlsGroup): Promise<void> {
    for (;;) {
      const page = await this.#deps.api.authed(this.#g.fetchCommits.bind(this.#g), {
        groupId: group.groupId,
        sinceEpoch: Number(group.epoch),
        limit: FETCH_PAGE,
      }, { idempotent: true });
      for (const commit of page.commits) {
        if (BigInt(commit.epoch) !== group.epoch || !group.active) continue;
        await group.process(commit.commit);
      }
      this.#save(record, group);
      if (!group.active || Number(group.epoch) >= page.currentEpoch || page.commits.length === 0) {
        return;
      }
    }
  }

  async #welcome(envelope: Envelope): Promise<void> {
    const id = toHex(envelope.groupId);
    if (envelope.groupId.byteLength === 0) throw new Error("a welcome without its group id");
    const privatePackage = await this.#deps.state.keyPackages.forWelcome(
      welcomeRecipients(envelope.content),
    );
    if (!privatePackage) throw new Error("no key package of this device opens the welcome");
    // The Welcome leaves the tree out; the commit that added us carries its GroupInfo.
    const epoch = Number(envelope.clientMessageId.split(".").at(-1));
    const page = await this.#deps.api.authed(this.#g.fetchCommits.bind(this.#g), {
      groupId: envelope.groupId,
      sinceEpoch: epoch,
      limit: 1,
    }, { idempotent: true });
    const groupInfo = page.commits[0]?.groupInfo;
    if (!groupInfo?.byteLength) throw new Error("the GroupInfo of the welcome's epoch is gone");
    const group = await MlsGroup.join(envelope.content, privatePackage, {
      groupInfo,
      ...this.#memberCheck(),
    });
    this.#deps.state.keyPackages.used(privatePackage);
    const record: GroupRecord = { id, name: "", state: group.export(), messages: [], forks: 0 };
    this.#deps.state.groups.put(record);
    this.#save(record, group);
    this.#deps.emit({ type: "group-joined", groupId: id, by: { ...envelope.sender! } });
  }

  async #handshake(envelope: Envelope): Promise<void> {
    const record = this.#deps.state.groups.get(toHex(envelope.groupId));
    if (!record || record.left) return;
    const group = await this.#load(record);
    if (!group.active) return;
    // A notice ([0]) stands for a commit too large to carry: fetch it.
    if (envelope.content.byteLength === 1 && envelope.content[0] === 0) {
      return await this.#catchUp(record, group);
    }
    const inspected = inspectPublicMessage(envelope.content);
    if (inspected.epoch < group.epoch) return; // applied already (catching up)
    if (inspected.epoch > group.epoch) await this.#catchUp(record, group);
    if (inspected.epoch !== group.epoch || !group.active) return;
    const before = new Set(group.roster().map((m) => m.identity));
    const incoming = await group.process(envelope.content);
    this.#save(record, group);
    if (incoming.kind === "proposal" && incoming.removes.length > 0) {
      return await this.#commitLeave(record, group, incoming.removes);
    }
    if (incoming.kind === "commit") {
      const after = new Set(group.active ? group.roster().map((m) => m.identity) : []);
      this.#emitChange(
        record,
        group,
        [...after].filter((x) => !before.has(x)).map(deviceOfIdentity),
        [...before].filter((x) => !after.has(x)).map(deviceOfIdentity),
      );
    }
  }

  /**
   * A member asked to leave: the active member with the lowest leaf (other than the leavers)
   * commits the removal, so members do not all race for it.
   */
  async #commitLeave(record: GroupRecord, group: MlsGroup, leaves: number[]): Promise<void> {
    const leaving = new Set(leaves);
    const committer = group.roster().find((m) => !leaving.has(m.leafIndex));
    if (committer?.leafIndex !== group.ownLeafIndex) return;
    await this.#intent(record.id, async (current) => {
      const still = current.roster().filter((m) => leaving.has(m.leafIndex));
      if (still.length === 0) return undefined;
      return {
        pending: await current.remove(still.map((m) => m.leafIndex)),
        added: [],
        removed: still.map((m) => deviceOfIdentity(m.identity)),
      };
    });
  }

  async #application(envelope: Envelope): Promise<void> {
    const record = this.#deps.state.groups.get(toHex(envelope.groupId));
    if (!record || record.left) return;
    const group = await this.#load(record);
    if (!group.active) return;
    const incoming = await group.process(envelope.content);
    this.#save(record, group);
    if (incoming.kind !== "application") return;
    const content = decodeGroupContent(incoming.plaintext);
    if (content.fp && incoming.epoch === group.epoch && content.fp !== fingerprintOf(group)) {
      record.forks++;
      this.#deps.emit({ type: "group-fork", groupId: record.id, epoch: Number(group.epoch) });
    }
    const from = { ...envelope.sender! };
    if (content.kind === "name") {
      record.name = content.name;
      this.#deps.emit({ type: "group-renamed", groupId: record.id, name: content.name });
      return;
    }
    if (content.kind === "typing") {
      this.#deps.emit({ type: "group-typing", groupId: record.id, from, typing: content.typing });
      return;
    }
    if (content.kind === "read") {
      const ids = new Set(content.ids);
      const reader = from.accountId;
      const read = record.messages.filter((m) => m.direction === "out" && ids.has(m.id));
      for (const m of read) m.readBy = [...new Set([...(m.readBy ?? []), reader])];
      if (read.length > 0) {
        this.#deps.emit({
          type: "group-read",
          groupId: record.id,
          by: reader,
          ids: read.map((m) => m.id),
        });
      }
      return;
    }
    const message: GroupMessage = {
      id: content.id,
      direction: "in",
      from,
      body: content.body,
      sentAtMs: content.sentAtMs,
      serverTimestampMs: envelope.serverTimestampMs,
      ...(content.file ? { file: content.file } : {}),
    };
    if (this.#deps.state.groups.addMessage(record.id, message)) {
      this.#deps.emit({ type: "group-message", groupId: record.id, message });
    }
  }

  /** Tells the other members' open devices that we type (or stopped). Best effort. */
  async sendTyping(groupId: string, typing: boolean): Promise<void> {
    await this.#sendContent(groupId, { kind: "typing", typing, fp: "" });
  }

  /** Marks the group's incoming messages read; their senders get a read receipt. */
  async markRead(groupId: string): Promise<number> {
    const record = this.#record(groupId);
    const unread = record.messages.filter((m) => m.direction === "in" && !m.read);
    if (unread.length === 0) return 0;
    for (const m of unread) m.read = true;
    const ids = unread.map((m) => m.id).slice(-MAX_RECEIPT_IDS);
    await this.#sendContent(groupId, { kind: "read", ids, fp: "" });
    return unread.length;
  }

  async #sendContent(groupId: string, content: GroupContent) {
    const record = this.#record(groupId);
    const group = await this.#load(record);
    const withFingerprint = { ...content, fp: fingerprintOf(group) };
    const ciphertext = await group.encrypt(utf8Encode(JSON.stringify(withFingerprint)));
    this.#save(record, group);
    return await this.#deps.api.authed(this.#g.sendGroupMessage.bind(this.#g), {
      groupId: group.groupId,
      epoch: Number(group.epoch),
      privateMessage: ciphertext,
      clientMessageId: `g-${crypto.randomUUID()}`,
      ephemeral: content.kind === "typing",
      silent: content.kind !== "text",
    }, { idempotent: true });
  }

  #emitChange(
    record: GroupRecord,
    group: MlsGroup,
    added: readonly DeviceAddress[],
    removed: readonly DeviceAddress[],
  ): void {
    this.#deps.emit({
      type: "group-members",
      groupId: record.id,
      epoch: Number(group.epoch),
      added: [...added],
      removed: [...removed],
      removedSelf: !group.active,
    });
  }
}

/** Epoch, roster and activity of a saved state, so listing groups decodes nothing. */
const GROUP_META = new WeakMap<
  Uint8Array,
  { epoch: number; members: DeviceAddress[]; active: boolean }
>();

/** Five groups of four hex digits of the epoch authenticator's SHA-256. */
function fingerprintOf(group: MlsGroup): string {
  const hex = toHex(group.epochAuthenticator).slice(0, 20);
  return hex.match(/.{4}/g)!.join(" ");
}

function decodeGroupContent(bytes: Uint8Array): GroupContent {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(utf8Decode(bytes));
  } catch {
    throw new GroupError("malformed", "a group message is not JSON");
  }
  const fp = typeof value.fp === "string" ? value.fp : "";
  if (value.kind === "name" && typeof value.name === "string") {
    return { kind: "name", name: value.name.slice(0, 128), fp };
  }
  if (value.kind === "typing" && typeof value.typing === "boolean") {
    return { kind: "typing", typing: value.typing, fp };
  }
  if (
    value.kind === "read" && Array.isArray(value.ids) && value.ids.length <= MAX_RECEIPT_IDS &&
    value.ids.every((id) => typeof id === "string" && id.length <= 128)
  ) {
    return { kind: "read", ids: value.ids as string[], fp };
  }
  if (
    value.kind === "text" && typeof value.id === "string" && typeof value.body === "string" &&
    typeof value.sentAtMs === "number"
  ) {
    const file = value.file as FileRef | undefined;
    if (file !== undefined) {
      checkFileRef(file, (why) => new GroupError("malformed", `bad file: ${why}`));
    }
    return {
      kind: "text",
      id: value.id.slice(0, 128),
      body: value.body.slice(0, 65_536),
      sentAtMs: value.sentAtMs,
      fp,
      ...(file ? { file: pickFile(file) } : {}),
    };
  }
  throw new GroupError("malformed", "unknown group message");
}

function checkName(name: string): void {
  if (name.length < 1 || name.length > 128 || /\p{Cc}/u.test(name)) {
    throw badInput("a group name has 1..128 characters and no control characters");
  }
}

export function identityOf(device: { accountId: string; deviceId: string }): string {
  return `${device.accountId}:${device.deviceId}`;
}

function deviceOfIdentity(identity: string): DeviceAddress {
  const [accountId = "", deviceId = ""] = identity.split(":");
  return { accountId, deviceId };
}
