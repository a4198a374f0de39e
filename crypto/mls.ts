/**
 * Guardyn's group messaging API over ts-mls (RFC 9420).
 *
 * - Credentials are MLS basic credentials whose identity is the device address (UTF-8).
 * - Handshake messages (commits, proposals) travel as PublicMessage so the delivery service can
 *   check the sender's membership and mirror the roster (see mls_inspect.ts); application
 *   messages travel as PrivateMessage. Incoming messages that break this rule are refused.
 * - The delivery service accepts one commit per epoch. A commit we create is therefore only
 *   *pending*: merge it once the server accepted it, or discard it when another member's commit
 *   won (processing that winning commit discards ours automatically).
 * - Welcome messages carry the ratchet tree, so joining needs nothing but the Welcome.
 * - `export()` / `MlsGroup.restore()` use a versioned encoding that includes a pending commit.
 *   The bytes contain private keys: store them encrypted. Save after every call that changes
 *   the state and never run two copies: a stale copy would reuse message keys.
 */
// X-Wing is an optional peer of ts-mls, loaded by a dynamic import inside it; importing it here
// puts it into every module graph (Deno, bundlers) that uses this file.
import "@hpke/hybridkem-x-wing";
import {
  type CiphersuiteImpl,
  type CiphersuiteName,
  ciphersuites,
  type ClientConfig,
  type ClientState,
  createApplicationMessage,
  createCommit,
  createGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  createProposal,
  type Credential,
  decodeGroupState,
  decodeMlsMessage,
  defaultCapabilities,
  defaultKeyPackageEqualityConfig,
  defaultKeyRetentionConfig,
  defaultLifetime,
  defaultLifetimeConfig,
  defaultPaddingConfig,
  emptyPskIndex,
  encodeGroupState,
  encodeMlsMessage,
  generateKeyPackage as generateTsMlsKeyPackage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  joinGroup,
  type KeyPackage,
  makePskIndex,
  type MLSMessage,
  type PrivateKeyPackage,
  processPrivateMessage,
  processPublicMessage,
  type Proposal,
  type RatchetTree,
  zeroOutUint8Array,
} from "ts-mls";
import { decryptSenderData } from "ts-mls/privateMessage.js";
import { ratchetTreeFromExtension } from "ts-mls/groupInfo.js";
import { makeKeyPackageRef } from "ts-mls/keyPackage.js";
import { LEAF_BINDING_EXTENSION } from "./mls_binding.ts";
import { guardynCryptoProvider } from "./mls_provider.ts";
import { decodeFrames, encodeFrames, MlsStateError, readU16, u16 } from "./mls_state.ts";
import { constantTimeEqual } from "./primitives.ts";

/** Cipher suites Guardyn offers; `x25519` (RFC 9420 suite 1) is the default. */
export const MLS_SUITES = {
  x25519: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
  xwing: "MLS_256_XWING_AES256GCM_SHA512_Ed25519",
} as const satisfies Record<string, CiphersuiteName>;
export type MlsSuite = keyof typeof MLS_SUITES;

export const MAX_GROUP_MEMBERS = 4096;
export const MAX_CHANGES_PER_COMMIT = 1024;
export const MAX_IDENTITY_BYTES = 255;
export const MAX_GROUP_ID_BYTES = 255;
export const MAX_APPLICATION_BYTES = 1024 * 1024;
/** Largest MLS message we decode (Welcome messages carry the whole tree). */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

const GROUP_STATE_MAGIC = "GMLS";
const KEY_PACKAGE_MAGIC = "GMKP";
const FORMAT_VERSION = 1;

export type GroupErrorCode =
  | "invalid-argument"
  | "malformed"
  | "wrong-group"
  | "stale-epoch"
  | "future-epoch"
  | "wrong-wire-format"
  | "not-member"
  | "pending-commit"
  | "inactive"
  | "rejected";

export class GroupError extends Error {
  constructor(readonly code: GroupErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "GroupError";
  }
}

export interface Member {
  leafIndex: number;
  /** Device address from the member's basic credential. */
  identity: string;
}

export interface GroupOptions {
  /**
   * Extra check for every credential the group sees (adds, joins, updates), e.g. that the
   * signature key is the one the key directory lists for that device. Without it any
   * well-formed device address is accepted.
   */
  validateMember?: (
    identity: string,
    signaturePublicKey: Uint8Array,
    /** The leaf's binding extension (mls_binding.ts), when the leaf carries one. */
    binding: Uint8Array | undefined,
  ) => boolean | Promise<boolean>;
}

export interface CreateGroupOptions extends GroupOptions {
  deviceAddress: string;
  /** Signs this device's leaf with the account identity key (mls_binding.ts). */
  bind?: LeafBinder;
  suite?: MlsSuite;
  /** Defaults to 32 random bytes. */
  groupId?: Uint8Array;
}

export interface KeyPackageBundle {
  /** MLSMessage(KeyPackage) to publish through the server. */
  keyPackage: Uint8Array;
  /** Private keys plus the key package; stays on the device until it joins with it. */
  privateKeyPackage: Uint8Array;
}

export interface PendingCommit {
  /** The epoch this commit advances from (the server's compare-and-set value). */
  epoch: bigint;
  /** MLSMessage(PublicMessage) with the commit, for the delivery service. */
  commit: Uint8Array;
  /** MLSMessage(Welcome) for the added devices, when the commit adds any. */
  welcome?: Uint8Array;
  /**
   * MLSMessage(GroupInfo) of the epoch this commit starts, with the ratchet tree, signed by
   * this device: the delivery service checks the next commit against it.
   */
  groupInfo: Uint8Array;
}

export type IncomingMessage =
  | { kind: "application"; epoch: bigint; sender: Member; plaintext: Uint8Array }
  | {
    kind: "commit";
    /** The new epoch. */
    epoch: bigint;
    committer?: Member;
    added: Member[];
    removed: Member[];
    /** This device was removed; the group is no longer usable. */
    removedSelf: boolean;
    /** The commit was our own pending commit (echoed by the server) and is now merged. */
    ownCommit: boolean;
    /** Another commit won the epoch, so our pending commit was dropped; redo the change. */
    discardedPendingCommit: boolean;
  }
  | {
    kind: "proposal";
    epoch: bigint;
    sender?: Member;
    /** Leaves a Remove proposal asks to remove (a member leaving: commit it with remove()). */
    removes: number[];
  };

/** Makes the binding extension's content for a leaf's signature key (mls_binding.ts). */
export type LeafBinder = (signaturePublicKey: Uint8Array) => Uint8Array | Promise<Uint8Array>;

/**
 * Generates a key package for `deviceAddress` to publish, plus its private half. With `bind`,
 * the leaf carries the account's signature over it (LEAF_BINDING_EXTENSION).
 */
export async function generateKeyPackage(
  deviceAddress: string,
  options: { suite?: MlsSuite; bind?: LeafBinder } = {},
): Promise<KeyPackageBundle> {
  const suite = options.suite ?? "x25519";
  const impl = await suiteImpl(suite);
  const { publicPackage, privatePackage } = await leafKeyPackage(deviceAddress, impl, options.bind);
  const keyPackage = encodeMlsMessage({
    version: "mls10",
    wireformat: "mls_key_package",
    keyPackage: publicPackage,
  });
  const privateKeyPackage = encodeFrames(KEY_PACKAGE_MAGIC, FORMAT_VERSION, [
    u16(ciphersuites[MLS_SUITES[suite]]),
    keyPackage,
    privatePackage.initPrivateKey,
    privatePackage.hpkePrivateKey,
    privatePackage.signaturePrivateKey,
  ]);
  return { keyPackage, privateKeyPackage };
}

interface Pending extends PendingCommit {
  state: ClientState;
  consumed: Uint8Array[];
}

export class MlsGroup {
  #state: ClientState;
  #pending: Pending | undefined;
  readonly #impl: CiphersuiteImpl;
  readonly suite: MlsSuite;

  private constructor(
    state: ClientState,
    impl: CiphersuiteImpl,
    suite: MlsSuite,
    pending?: Pending,
  ) {
    this.#state = state;
    this.#impl = impl;
    this.suite = suite;
    this.#pending = pending;
  }

  /** Creates a one-member group with this device as its first member. */
  static async create(options: CreateGroupOptions): Promise<MlsGroup> {
    const suite = options.suite ?? "x25519";
    checkSuite(suite);
    const groupId = options.groupId ?? crypto.getRandomValues(new Uint8Array(32));
    if (
      !(groupId instanceof Uint8Array) || groupId.length === 0 ||
      groupId.length > MAX_GROUP_ID_BYTES
    ) {
      throw new GroupError("invalid-argument", `groupId must be 1..${MAX_GROUP_ID_BYTES} bytes`);
    }
    const impl = await suiteImpl(suite);
    const own = await leafKeyPackage(options.deviceAddress, impl, options.bind);
    const state = await mlsCall(() =>
      createGroup(
        groupId.slice(),
        own.publicPackage,
        own.privatePackage,
        [],
        impl,
        clientConfig(options),
      )
    );
    return new MlsGroup(state, impl, suite);
  }

  /** Joins a group from a Welcome, using the private half of the key package it was sent to. */
  static async join(
    welcome: Uint8Array,
    privateKeyPackage: Uint8Array,
    options: GroupOptions & {
      /**
       * The GroupInfo (with the ratchet tree) of the epoch the Welcome starts: Welcomes leave
       * the tree out, so their size grows with the devices added, not with the group. The
       * tree is checked against the tree hash the Welcome's encrypted GroupInfo carries.
       */
      groupInfo?: Uint8Array;
    } = {},
  ): Promise<MlsGroup> {
    const bundle = decodePrivateKeyPackage(privateKeyPackage);
    let ratchetTree: RatchetTree | undefined;
    if (options.groupInfo !== undefined) {
      const info = decodeMessage(options.groupInfo);
      if (info.wireformat !== "mls_group_info") {
        throw new GroupError("wrong-wire-format", `expected a GroupInfo, got ${info.wireformat}`);
      }
      ratchetTree = ratchetTreeFromExtension(info.groupInfo);
    }
    rememberBindings(leavesOfTree(ratchetTree));
    const message = decodeMessage(welcome);
    if (message.wireformat !== "mls_welcome") {
      throw new GroupError("wrong-wire-format", `expected a Welcome, got ${message.wireformat}`);
    }
    if (message.welcome.cipherSuite !== MLS_SUITES[bundle.suite]) {
      throw new GroupError("invalid-argument", "Welcome and key package use different suites");
    }
    const impl = await suiteImpl(bundle.suite);
    const state = await mlsCall(() =>
      joinGroup(
        message.welcome,
        bundle.keyPackage,
        bundle.privatePackage,
        emptyPskIndex,
        impl,
        ratchetTree,
        undefined,
        clientConfig(options),
      )
    );
    return new MlsGroup(state, impl, bundle.suite);
  }

  /** Restores a group from `export()` bytes. */
  static async restore(bytes: Uint8Array, options: GroupOptions = {}): Promise<MlsGroup> {
    const { version, fields } = decodeStateFrames(bytes, GROUP_STATE_MAGIC, "MLS group state");
    if (version !== FORMAT_VERSION) {
      throw new GroupError("malformed", `unsupported MLS group state version ${version}`);
    }
    if (fields.length !== 2 && fields.length !== 6) {
      throw new GroupError("malformed", "MLS group state has an unexpected layout");
    }
    const suite = suiteFromId(readU16(fields[0], "suite"));
    const impl = await suiteImpl(suite);
    const config = clientConfig(options);
    const state = { ...decodeState(fields[1]!), clientConfig: config };
    let pending: Pending | undefined;
    if (fields.length === 6) {
      const epochBytes = fields[5]!;
      if (epochBytes.length !== 8) throw new GroupError("malformed", "bad pending commit epoch");
      const pendingState = { ...decodeState(fields[2]!), clientConfig: config };
      pending = {
        state: pendingState,
        // Not stored: made again from the pending state (same tree, same signer).
        groupInfo: await groupInfoOf(pendingState, impl),
        commit: fields[3]!.slice(),
        welcome: fields[4]!.length > 0 ? fields[4]!.slice() : undefined,
        epoch: new DataView(epochBytes.buffer, epochBytes.byteOffset).getBigUint64(0),
        consumed: [],
      };
    }
    return new MlsGroup(state, impl, suite, pending);
  }

  get groupId(): Uint8Array {
    return this.#state.groupContext.groupId.slice();
  }

  get epoch(): bigint {
    return this.#state.groupContext.epoch;
  }

  get ownLeafIndex(): number {
    return this.#state.privatePath.leafIndex;
  }

  /** False once this device has been removed from the group. */
  get active(): boolean {
    return this.#state.groupActiveState.kind === "active";
  }

  get pendingCommit(): PendingCommit | undefined {
    const pending = this.#pending;
    return pending && {
      epoch: pending.epoch,
      commit: pending.commit,
      welcome: pending.welcome,
      groupInfo: pending.groupInfo,
    };
  }

  /** Current members, by leaf index. */
  roster(): Member[] {
    return rosterOf(this.#state.ratchetTree);
  }

  /** Commits adding the devices behind these published key packages. */
  async add(keyPackages: readonly Uint8Array[]): Promise<PendingCommit> {
    if (keyPackages.length === 0 || keyPackages.length > MAX_CHANGES_PER_COMMIT) {
      throw new GroupError(
        "invalid-argument",
        `add takes 1..${MAX_CHANGES_PER_COMMIT} key packages`,
      );
    }
    if (this.roster().length + keyPackages.length > MAX_GROUP_MEMBERS) {
      throw new GroupError("invalid-argument", `groups are limited to ${MAX_GROUP_MEMBERS}`);
    }
    const proposals: Proposal[] = keyPackages.map((bytes) => {
      const message = decodeMessage(bytes);
      if (message.wireformat !== "mls_key_package") {
        throw new GroupError(
          "wrong-wire-format",
          `expected a KeyPackage, got ${message.wireformat}`,
        );
      }
      if (message.keyPackage.cipherSuite !== this.#state.groupContext.cipherSuite) {
        throw new GroupError("invalid-argument", "key package uses another cipher suite");
      }
      return { proposalType: "add", add: { keyPackage: message.keyPackage } };
    });
    rememberBindings(proposals.map((p) => ("add" in p ? p.add.keyPackage.leafNode : undefined)!));
    // Our own adds pass the same member check as everyone else's (ts-mls checks credentials
    // of added leaves only when they are processed, not when they are committed).
    const validate = this.#state.clientConfig.authService;
    for (const proposal of proposals) {
      const leaf = "add" in proposal ? proposal.add.keyPackage.leafNode : undefined;
      if (leaf && !await validate.validateCredential(leaf.credential, leaf.signaturePublicKey)) {
        throw new GroupError("rejected", "a key package failed the member check (validateMember)");
      }
    }
    return await this.#commit(proposals);
  }

  /** Commits removing members, given by leaf index or device address. */
  async remove(members: readonly (number | string)[]): Promise<PendingCommit> {
    if (members.length === 0 || members.length > MAX_CHANGES_PER_COMMIT) {
      throw new GroupError("invalid-argument", `remove takes 1..${MAX_CHANGES_PER_COMMIT} members`);
    }
    const roster = this.roster();
    const leaves = new Set<number>();
    for (const member of members) {
      const found = roster.find((m) =>
        typeof member === "number" ? m.leafIndex === member : m.identity === member
      );
      if (found === undefined) throw new GroupError("not-member", `${member} is not a member`);
      if (found.leafIndex === this.ownLeafIndex) {
        throw new GroupError("invalid-argument", "a member cannot commit its own removal");
      }
      leaves.add(found.leafIndex);
    }
    return await this.#commit(
      [...leaves].map((removed) => ({ proposalType: "remove", remove: { removed } })),
    );
  }

  /**
   * The epoch authenticator (RFC 9420 §8.7): equal for every member of this epoch iff they
   * share its secrets, so comparing it (or a short fingerprint of it) detects a fork.
   */
  get epochAuthenticator(): Uint8Array {
    return this.#state.keySchedule.epochAuthenticator.slice();
  }

  /** MLSMessage(GroupInfo) of the current epoch, with the ratchet tree, signed by this device. */
  groupInfo(): Promise<Uint8Array> {
    this.#assertActive();
    return groupInfoOf(this.#state, this.#impl);
  }

  /**
   * A Remove proposal for this device's own leaf (MLSMessage with a PublicMessage): members
   * cannot commit their own removal, so another member commits it.
   */
  async proposeRemoveSelf(): Promise<Uint8Array> {
    this.#assertActive();
    const result = await mlsCall(() =>
      createProposal(this.#state, true, {
        proposalType: "remove",
        remove: { removed: this.ownLeafIndex },
      }, this.#impl)
    );
    return encodeMlsMessage(result.message);
  }

  /** Commits fresh keys for this device (post-compromise security). */
  update(): Promise<PendingCommit> {
    return this.#commit([]);
  }

  /** Applies our pending commit after the delivery service accepted it. */
  mergePendingCommit(): void {
    const pending = this.#pending;
    if (pending === undefined) throw new GroupError("invalid-argument", "no pending commit");
    this.#state = pending.state;
    this.#pending = undefined;
    pending.consumed.forEach(zeroOutUint8Array);
  }

  /** Drops our pending commit (the delivery service refused it). */
  discardPendingCommit(): void {
    this.#pending = undefined;
  }

  /** Encrypts an application message as an MLSMessage(PrivateMessage). */
  async encrypt(plaintext: Uint8Array): Promise<Uint8Array> {
    this.#assertActive();
    if (!(plaintext instanceof Uint8Array) || plaintext.length > MAX_APPLICATION_BYTES) {
      throw new GroupError(
        "invalid-argument",
        `plaintext must be a Uint8Array of at most ${MAX_APPLICATION_BYTES} bytes`,
      );
    }
    const result = await mlsCall(() =>
      createApplicationMessage(this.#state, plaintext, this.#impl)
    );
    this.#state = result.newState;
    result.consumed.forEach(zeroOutUint8Array);
    return encodeMlsMessage({
      version: "mls10",
      wireformat: "mls_private_message",
      privateMessage: result.privateMessage,
    });
  }

  /** Processes a message from the group: commit or proposal (PublicMessage), or application. */
  async process(bytes: Uint8Array): Promise<IncomingMessage> {
    this.#assertActive();
    const message = decodeMessage(bytes);
    if (message.wireformat === "mls_public_message") {
      return await this.#processHandshake(bytes, message);
    }
    if (message.wireformat === "mls_private_message") {
      return await this.#processApplication(message);
    }
    throw new GroupError(
      "wrong-wire-format",
      `expected a PublicMessage or PrivateMessage, got ${message.wireformat}`,
    );
  }

  /** Versioned encoding of the group state (secrets included), with any pending commit. */
  export(): Uint8Array {
    const fields = [u16(ciphersuites[MLS_SUITES[this.suite]]), encodeGroupState(this.#state)];
    const pending = this.#pending;
    if (pending !== undefined) {
      const epoch = new Uint8Array(8);
      new DataView(epoch.buffer).setBigUint64(0, pending.epoch);
      fields.push(
        encodeGroupState(pending.state),
        pending.commit,
        pending.welcome ?? new Uint8Array(0),
        epoch,
      );
    }
    return encodeFrames(GROUP_STATE_MAGIC, FORMAT_VERSION, fields);
  }

  async #commit(proposals: Proposal[]): Promise<PendingCommit> {
    this.#assertActive();
    if (this.#pending !== undefined) {
      throw new GroupError(
        "pending-commit",
        "a commit is already pending; merge or discard it first",
      );
    }
    // Proposals received by reference are not committed as such: the delivery service only
    // accepts inline proposals, and remove() puts a leaving member's Remove inline.
    const state = { ...this.#state, unappliedProposals: {} };
    const result = await mlsCall(() =>
      createCommit({ state, cipherSuite: this.#impl }, {
        wireAsPublicMessage: true,
        extraProposals: proposals,
        // The tree travels in the published GroupInfo (GetGroupState), not in every Welcome.
        ratchetTreeExtension: false,
      })
    );
    const pending: Pending = {
      epoch: this.epoch,
      commit: encodeMlsMessage(result.commit),
      welcome: result.welcome &&
        encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: result.welcome }),
      groupInfo: await groupInfoOf(result.newState, this.#impl),
      state: result.newState,
      // Zeroed only on merge: they include secrets of the current epoch, which stays in use
      // if the server refuses this commit.
      consumed: result.consumed,
    };
    this.#pending = pending;
    return {
      epoch: pending.epoch,
      commit: pending.commit,
      welcome: pending.welcome,
      groupInfo: pending.groupInfo,
    };
  }

  async #processHandshake(
    bytes: Uint8Array,
    message: MLSMessage & { wireformat: "mls_public_message" },
  ): Promise<IncomingMessage> {
    const { content } = message.publicMessage;
    this.#assertGroup(content.groupId);
    if (content.contentType === "application") {
      throw new GroupError("wrong-wire-format", "application data must be a PrivateMessage");
    }
    this.#assertEpoch(content.epoch);
    rememberBindings(leavesOfHandshake(message));
    const before = this.roster();
    const pending = this.#pending;
    if (content.contentType === "commit" && pending !== undefined) {
      if (constantTimeEqual(bytes, pending.commit)) {
        this.mergePendingCommit();
        return this.#commitSummary(before, content.sender, { ownCommit: true, discarded: false });
      }
    }
    const result = await mlsCall(() =>
      processPublicMessage(
        this.#state,
        message.publicMessage,
        makePskIndex(this.#state, {}),
        this.#impl,
      )
    );
    this.#state = result.newState;
    result.consumed.forEach(zeroOutUint8Array);
    if (content.contentType === "proposal") {
      const proposal = content.proposal;
      const removes = proposal.proposalType === "remove" && "remove" in proposal
        ? [proposal.remove.removed]
        : [];
      return {
        kind: "proposal",
        epoch: content.epoch,
        sender: this.#member(content.sender),
        removes,
      };
    }
    // Another member's commit won this epoch; ours can no longer apply.
    const discarded = pending !== undefined;
    this.#pending = undefined;
    return this.#commitSummary(before, content.sender, { ownCommit: false, discarded });
  }

  async #processApplication(
    message: MLSMessage & { wireformat: "mls_private_message" },
  ): Promise<IncomingMessage> {
    const pm = message.privateMessage;
    this.#assertGroup(pm.groupId);
    if (pm.contentType !== "application") {
      throw new GroupError("wrong-wire-format", "handshake messages must be PublicMessage");
    }
    if (pm.epoch > this.epoch) {
      throw new GroupError(
        "future-epoch",
        `message for epoch ${pm.epoch}, group is at ${this.epoch}`,
      );
    }
    // Keys of recent past epochs are retained, so late application messages still open.
    const epochData = pm.epoch === this.epoch
      ? {
        senderDataSecret: this.#state.keySchedule.senderDataSecret,
        tree: this.#state.ratchetTree,
      }
      : (() => {
        const old = this.#state.historicalReceiverData.get(pm.epoch);
        if (old === undefined) {
          throw new GroupError("stale-epoch", `keys for epoch ${pm.epoch} are no longer kept`);
        }
        return { senderDataSecret: old.senderDataSecret, tree: old.ratchetTree };
      })();
    const result = await mlsCall(() =>
      processPrivateMessage(this.#state, pm, makePskIndex(this.#state, {}), this.#impl)
    );
    if (result.kind !== "applicationMessage") {
      throw new GroupError("wrong-wire-format", "handshake messages must be PublicMessage");
    }
    // The signature check above used this same sender data, so the leaf index is authentic.
    const senderData = await decryptSenderData(pm, epochData.senderDataSecret, this.#impl);
    const sender = senderData && memberAt(epochData.tree, senderData.leafIndex);
    if (sender === undefined) throw new GroupError("rejected", "message sender is not a member");
    this.#state = result.newState;
    result.consumed.forEach(zeroOutUint8Array);
    return { kind: "application", epoch: pm.epoch, sender, plaintext: result.message };
  }

  #commitSummary(
    before: Member[],
    sender: { senderType: string; leafIndex?: number },
    flags: { ownCommit: boolean; discarded: boolean },
  ): IncomingMessage {
    const after = this.roster();
    const key = (m: Member) => `${m.leafIndex}\u0000${m.identity}`;
    const beforeKeys = new Set(before.map(key));
    const afterKeys = new Set(after.map(key));
    const committer = sender.leafIndex === undefined
      ? undefined
      : before.find((m) => m.leafIndex === sender.leafIndex);
    return {
      kind: "commit",
      epoch: this.epoch,
      committer,
      added: after.filter((m) => !beforeKeys.has(key(m))),
      removed: before.filter((m) => !afterKeys.has(key(m))),
      removedSelf: !this.active,
      ownCommit: flags.ownCommit,
      discardedPendingCommit: flags.discarded,
    };
  }

  #member(sender: { senderType: string; leafIndex?: number }): Member | undefined {
    return sender.leafIndex === undefined
      ? undefined
      : memberAt(this.#state.ratchetTree, sender.leafIndex);
  }

  #assertActive(): void {
    if (!this.active) throw new GroupError("inactive", "this device is no longer in the group");
  }

  #assertGroup(groupId: Uint8Array): void {
    if (!constantTimeEqual(groupId, this.#state.groupContext.groupId)) {
      throw new GroupError("wrong-group", "message belongs to another group");
    }
  }

  #assertEpoch(epoch: bigint): void {
    if (epoch < this.epoch) {
      throw new GroupError(
        "stale-epoch",
        `handshake message for epoch ${epoch}, group is at ${this.epoch}`,
      );
    }
    if (epoch > this.epoch) {
      throw new GroupError(
        "future-epoch",
        `handshake message for epoch ${epoch}, group is at ${this.epoch}; fetch missed commits`,
      );
    }
  }
}

function rosterOf(tree: RatchetTree): Member[] {
  const members: Member[] = [];
  for (let node = 0; node < tree.length; node += 2) {
    const member = memberAt(tree, node / 2);
    if (member !== undefined) members.push(member);
  }
  return members;
}

function memberAt(tree: RatchetTree, leafIndex: number): Member | undefined {
  const node = tree[leafIndex * 2];
  if (node === undefined || node.nodeType !== "leaf") return undefined;
  const credential = node.leaf.credential;
  if (credential.credentialType !== "basic") return undefined;
  return { leafIndex, identity: decodeIdentity(credential.identity) };
}

function basicCredential(deviceAddress: string): Credential {
  if (typeof deviceAddress !== "string") {
    throw new GroupError("invalid-argument", "deviceAddress must be a string");
  }
  const identity = new TextEncoder().encode(deviceAddress);
  if (identity.length === 0 || identity.length > MAX_IDENTITY_BYTES) {
    throw new GroupError(
      "invalid-argument",
      `deviceAddress must be 1..${MAX_IDENTITY_BYTES} bytes of UTF-8`,
    );
  }
  return { credentialType: "basic", identity };
}

function decodeIdentity(identity: Uint8Array): string {
  return new TextDecoder("utf-8", { fatal: true }).decode(identity);
}

function clientConfig(options: GroupOptions): ClientConfig {
  const validateMember = options.validateMember;
  return {
    keyRetentionConfig: defaultKeyRetentionConfig,
    lifetimeConfig: defaultLifetimeConfig,
    keyPackageEqualityConfig: defaultKeyPackageEqualityConfig,
    paddingConfig: defaultPaddingConfig,
    authService: {
      async validateCredential(credential, signaturePublicKey) {
        if (credential.credentialType !== "basic") return false;
        const { identity } = credential;
        if (identity.length === 0 || identity.length > MAX_IDENTITY_BYTES) return false;
        let address: string;
        try {
          address = decodeIdentity(identity);
        } catch {
          return false;
        }
        return validateMember === undefined ||
          await validateMember(address, signaturePublicKey, BINDINGS.get(hex(signaturePublicKey)));
      },
    },
  };
}

const implCache = new Map<MlsSuite, Promise<CiphersuiteImpl>>();

/** A key package whose leaf may carry the binding extension. */
async function leafKeyPackage(deviceAddress: string, impl: CiphersuiteImpl, bind?: LeafBinder) {
  const credential = basicCredential(deviceAddress);
  if (!bind) {
    return await generateTsMlsKeyPackage(
      credential,
      defaultCapabilities(),
      defaultLifetime,
      [],
      impl,
    );
  }
  const keys = await impl.signature.keygen();
  const binding = await bind(keys.publicKey);
  const capabilities = defaultCapabilities();
  capabilities.extensions = [...capabilities.extensions, LEAF_BINDING_EXTENSION];
  return await generateKeyPackageWithKey(
    credential,
    capabilities,
    defaultLifetime,
    [],
    keys,
    impl,
    [{ extensionType: LEAF_BINDING_EXTENSION, extensionData: binding }],
  );
}

/**
 * Binding extensions seen, by signature key (hex): ts-mls hands credential validation only
 * the credential and the key, so leaves are scanned when they arrive. Public data, bounded.
 */
const BINDINGS = new Map<string, Uint8Array>();
const BINDINGS_MAX = 50_000;

function rememberBindings(
  leaves: Iterable<
    {
      signaturePublicKey: Uint8Array;
      extensions: { extensionType: unknown; extensionData: Uint8Array }[];
    }
  >,
) {
  for (const leaf of leaves) {
    const found = leaf.extensions.find((e) => e.extensionType === LEAF_BINDING_EXTENSION);
    if (!found) continue;
    const key = hex(leaf.signaturePublicKey);
    BINDINGS.delete(key);
    BINDINGS.set(key, found.extensionData);
    if (BINDINGS.size > BINDINGS_MAX) BINDINGS.delete(BINDINGS.keys().next().value!);
  }
}

/** The leaves a PublicMessage brings in (added key packages, the committer's new leaf). */
function leavesOfHandshake(message: MLSMessage & { wireformat: "mls_public_message" }) {
  const content = message.publicMessage.content;
  const leaves = [];
  if (content.contentType === "commit") {
    for (const entry of content.commit.proposals) {
      if (
        entry.proposalOrRefType === "proposal" && entry.proposal.proposalType === "add" &&
        "add" in entry.proposal
      ) {
        leaves.push(entry.proposal.add.keyPackage.leafNode);
      }
    }
    if (content.commit.path) leaves.push(content.commit.path.leafNode);
  }
  return leaves;
}

function leavesOfTree(tree: RatchetTree | undefined) {
  return (tree ?? []).flatMap((node) => node?.nodeType === "leaf" ? [node.leaf] : []);
}

async function groupInfoOf(state: ClientState, impl: CiphersuiteImpl): Promise<Uint8Array> {
  const groupInfo = await mlsCall(() =>
    createGroupInfoWithExternalPubAndRatchetTree(state, [], impl)
  );
  return encodeMlsMessage({ version: "mls10", wireformat: "mls_group_info", groupInfo });
}

/** The KeyPackageRef (RFC 9420 §5.2) of a published MLSMessage(KeyPackage), hex. */
export async function keyPackageRef(keyPackage: Uint8Array): Promise<string> {
  const message = decodeMessage(keyPackage);
  if (message.wireformat !== "mls_key_package") {
    throw new GroupError("wrong-wire-format", `expected a KeyPackage, got ${message.wireformat}`);
  }
  const impl = await suiteImpl(suiteFromName(message.keyPackage.cipherSuite));
  return hex(await makeKeyPackageRef(message.keyPackage, impl.hash));
}

/** The KeyPackageRef of the package a private key package (from generateKeyPackage) holds. */
export async function privateKeyPackageRef(privateKeyPackage: Uint8Array): Promise<string> {
  const bundle = decodePrivateKeyPackage(privateKeyPackage);
  const impl = await suiteImpl(bundle.suite);
  return hex(await makeKeyPackageRef(bundle.keyPackage, impl.hash));
}

/** The KeyPackageRefs a Welcome is addressed to, hex: which held package opens it. */
export function welcomeRecipients(welcome: Uint8Array): string[] {
  const message = decodeMessage(welcome);
  if (message.wireformat !== "mls_welcome") {
    throw new GroupError("wrong-wire-format", `expected a Welcome, got ${message.wireformat}`);
  }
  return message.welcome.secrets.map((secret) => hex(secret.newMember));
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function suiteFromName(name: string): MlsSuite {
  for (const [suite, value] of Object.entries(MLS_SUITES)) {
    if (value === name) return suite as MlsSuite;
  }
  throw new GroupError("malformed", `unsupported cipher suite ${name}`);
}

/** The implementation of a cipher suite by its RFC 9420 registry value (delivery checks). */
export async function suiteImplById(id: number): Promise<CiphersuiteImpl> {
  return await suiteImpl(suiteFromId(id));
}

function suiteImpl(suite: MlsSuite): Promise<CiphersuiteImpl> {
  checkSuite(suite);
  let impl = implCache.get(suite);
  if (impl === undefined) {
    impl = getCiphersuiteImpl(getCiphersuiteFromName(MLS_SUITES[suite]), guardynCryptoProvider);
    implCache.set(suite, impl);
  }
  return impl;
}

function checkSuite(suite: string): asserts suite is MlsSuite {
  if (!Object.hasOwn(MLS_SUITES, suite)) {
    throw new GroupError("invalid-argument", `unknown MLS suite ${suite}`);
  }
}

function suiteFromId(id: number): MlsSuite {
  for (const [suite, name] of Object.entries(MLS_SUITES)) {
    if (ciphersuites[name] === id) return suite as MlsSuite;
  }
  throw new GroupError("malformed", `unsupported cipher suite id ${id}`);
}

function decodeMessage(bytes: Uint8Array): MLSMessage {
  if (!(bytes instanceof Uint8Array) || bytes.length > MAX_MESSAGE_BYTES) {
    throw new GroupError(
      "invalid-argument",
      `MLS message must be a Uint8Array of at most ${MAX_MESSAGE_BYTES} bytes`,
    );
  }
  let decoded: [MLSMessage, number] | undefined;
  try {
    decoded = decodeMlsMessage(bytes, 0);
  } catch (cause) {
    throw new GroupError("malformed", "malformed MLS message", { cause });
  }
  if (decoded === undefined || decoded[1] !== bytes.length) {
    throw new GroupError("malformed", "malformed MLS message");
  }
  return decoded[0];
}

function decodeState(bytes: Uint8Array) {
  let decoded: ReturnType<typeof decodeGroupState>;
  try {
    decoded = decodeGroupState(bytes, 0);
  } catch (cause) {
    throw new GroupError("malformed", "malformed MLS group state", { cause });
  }
  if (decoded === undefined || decoded[1] !== bytes.length) {
    throw new GroupError("malformed", "malformed MLS group state");
  }
  return decoded[0];
}

function decodeStateFrames(bytes: Uint8Array, magic: string, what: string) {
  try {
    return decodeFrames(bytes, magic, what);
  } catch (cause) {
    if (cause instanceof MlsStateError) throw new GroupError("malformed", cause.message, { cause });
    throw cause;
  }
}

function decodePrivateKeyPackage(bytes: Uint8Array): {
  suite: MlsSuite;
  keyPackage: KeyPackage;
  privatePackage: PrivateKeyPackage;
} {
  const { version, fields } = decodeStateFrames(bytes, KEY_PACKAGE_MAGIC, "private key package");
  if (version !== FORMAT_VERSION || fields.length !== 5) {
    throw new GroupError("malformed", `unsupported private key package version ${version}`);
  }
  const [suiteId, published, initPrivateKey, hpkePrivateKey, signaturePrivateKey] = fields as [
    Uint8Array,
    Uint8Array,
    Uint8Array,
    Uint8Array,
    Uint8Array,
  ];
  const suite = suiteFromId(readU16(suiteId, "suite"));
  const message = decodeMessage(published);
  if (message.wireformat !== "mls_key_package") {
    throw new GroupError("malformed", "private key package lacks its key package");
  }
  return {
    suite,
    keyPackage: message.keyPackage,
    privatePackage: {
      initPrivateKey: initPrivateKey.slice(),
      hpkePrivateKey: hpkePrivateKey.slice(),
      signaturePrivateKey: signaturePrivateKey.slice(),
    },
  };
}

/** Runs a ts-mls operation, turning its errors into GroupError("rejected"). */
async function mlsCall<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (cause) {
    if (cause instanceof GroupError) throw cause;
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new GroupError("rejected", `MLS operation failed: ${reason}`, { cause });
  }
}
