/**
 * GroupService: the MLS delivery service. It orders commits (one per epoch, decided by the
 * store), checks what it can without group secrets (crypto/mls_delivery.ts), mirrors the
 * roster, and fans commits, welcomes and application messages out to member mailboxes.
 *
 * Recovery: the store logs a commit in the same atomic step that moves the epoch, and keeps
 * `fannedOutEpoch` behind until the commit reached every mailbox. Whoever touches the group
 * next (a commit, a message, a state read) finishes such a fan-out first; deliveries are
 * idempotent, so running one twice writes nothing twice.
 */
import { status as grpcStatus } from "@grpc/grpc-js";
import {
  DeliveryCheckError,
  type VerifiedGroupInfo,
  verifyCommit,
  verifyGroupInfo,
} from "../../crypto/mls_delivery.ts";
import { suiteImplById } from "../../crypto/mls.ts";
import { inspectPublicMessage, mlsGroupIdOf } from "../../crypto/mls_inspect.ts";
import { constantTimeEqual } from "../../crypto/primitives.ts";
import type { Bus } from "../bus/port.ts";
import type { MailboxEvents } from "../kit/mailbox_events.ts";
import { commitFanOutId } from "../kit/envelopes.ts";
import {
  failedPrecondition,
  GuardynError,
  invalidArgument,
  notFound,
  permissionDenied,
  resourceExhausted,
} from "../platform/errors.ts";
import { type Handlers, requireAuth } from "../platform/grpc_server.ts";
import type { Logger } from "../platform/log.ts";
import type { RateLimiter } from "../platform/rate_limit.ts";
import type { AuthStores } from "../store/auth_ports.ts";
import { deliveryRecordKey } from "../store/mailbox_rules.ts";
import type { GroupState, GroupStore, StoredCommit } from "../store/group_ports.ts";
import { GROUP_MEMBERS_MAX } from "../store/group_ports.ts";
import type { DeviceRef, MailboxStore } from "../store/ports.ts";
import { EpochConflict } from "../../proto/gen/guardyn/v1/common.ts";
import {
  Envelope,
  EnvelopeType,
  type GroupServiceService,
} from "../../proto/gen/guardyn/v1/messaging.ts";
import { fanOut, type FanOutDeps, type FanOutItem } from "./fanout.ts";
import {
  checkBytes,
  checkClientMessageId,
  checkDevices,
  checkEpoch,
  checkGroupId,
  checkLimit,
  GROUP_LIMITS,
  identityOf,
  pageAfter,
  pageToken,
} from "./request_rules.ts";
import { rosterAfterCommit } from "./roster_rules.ts";

/** Commits above this size reach mailboxes as a notice ([0]): members fetch them instead. */
export const COMMIT_INLINE_MAX_BYTES = 64 * 1024;
/** Verified GroupInfo views kept per instance (a commit needs the view of its epoch). */
const VIEW_CACHE_MAX = 256;

export interface GroupServiceDeps {
  groups: GroupStore;
  mailbox: MailboxStore;
  auth: AuthStores;
  bus: Bus;
  events: MailboxEvents;
  log: Logger;
  now: () => number;
  recordSecret: Uint8Array;
  mailboxTtlMs: number;
  idempotencyWindowMs: number;
  commitRetentionMs: number;
  limiters: {
    sends: RateLimiter;
    commits: RateLimiter;
    groupCommits: RateLimiter;
    groupMessages: RateLimiter;
    creates: RateLimiter;
  };
  /** Called with the outcome of each commit attempt (metrics). */
  onCommit?: (outcome: "accepted" | "stale" | "refused") => void;
}

export function groupHandlers(deps: GroupServiceDeps): Handlers<typeof GroupServiceService> {
  const views = new Map<string, Promise<VerifiedGroupInfo>>();
  const fanOutDeps: FanOutDeps = {
    mailbox: deps.mailbox,
    bus: deps.bus,
    events: deps.events,
    log: deps.log,
    now: deps.now,
    mailboxTtlMs: deps.mailboxTtlMs,
    idempotencyWindowMs: deps.idempotencyWindowMs,
  };

  /** The verified view of a group's stored GroupInfo, cached by group and epoch. */
  const viewOf = (state: GroupState): Promise<VerifiedGroupInfo> => {
    const key = `${pageToken(state.groupId)}/${state.groupInfoEpoch}`;
    let view = views.get(key);
    if (!view) {
      view = suiteImplById(state.cipherSuite).then((impl) =>
        verifyGroupInfo(state.groupInfo, {
          groupId: state.groupId,
          epoch: BigInt(state.groupInfoEpoch),
        }, impl)
      );
      view.catch(() => views.delete(key));
      views.set(key, view);
      if (views.size > VIEW_CACHE_MAX) views.delete(views.keys().next().value!);
    }
    return view;
  };

  /** The group for a member: NOT_FOUND without it, NOT_A_MEMBER when the caller is not in it. */
  const memberState = async (groupId: Uint8Array, caller: DeviceRef): Promise<GroupState> => {
    const state = await deps.groups.get(groupId);
    if (!state) throw notFound("no such group");
    if (!isMember(state, caller)) {
      throw permissionDenied("this device is not a member of the group", "NOT_A_MEMBER");
    }
    await finishFanOut(state);
    return state;
  };

  /** Sends the last commit to every mailbox if an earlier attempt did not finish. */
  const finishFanOut = async (state: GroupState): Promise<void> => {
    if (state.fannedOutEpoch >= state.epoch) return;
    const [commit] = await deps.groups.commits(state.groupId, state.epoch - 1, 1);
    if (!commit || commit.epoch !== state.epoch - 1) {
      // Pruned or never logged: nothing can be sent; members catch up through FetchCommits.
      await deps.groups.markFannedOut(state.groupId, state.epoch - 1);
      return;
    }
    await fanOutCommit(state, commit);
    deps.log.info("finished an interrupted commit fan-out", { epoch: commit.epoch });
  };

  const fanOutCommit = async (after: GroupState, commit: StoredCommit): Promise<void> => {
    const added = new Set(commit.added.map(identityOf));
    const sender = identityOf(commit.sender);
    // The members before the commit, except its sender; the removed ones learn of it too.
    const recipients = [
      ...after.members.map((m) => m.device).filter((d) => !added.has(identityOf(d))),
      ...commit.removed,
    ].filter((d) => identityOf(d) !== sender).sort(byIdentity);
    const inline = commit.commit.byteLength <= COMMIT_INLINE_MAX_BYTES;
    const items: FanOutItem[] = recipients.map((recipient) => ({
      recipient,
      type: EnvelopeType.ENVELOPE_TYPE_MLS_PUBLIC_MESSAGE,
      content: inline ? commit.commit : COMMIT_NOTICE,
    }));
    if (commit.welcome.byteLength > 0) {
      for (const recipient of [...commit.added].sort(byIdentity)) {
        items.push({
          recipient,
          type: EnvelopeType.ENVELOPE_TYPE_MLS_WELCOME,
          content: commit.welcome,
        });
      }
    }
    if (items.length > 0) {
      await fanOut(fanOutDeps, {
        sender: commit.sender,
        clientMessageId: commitFanOutId(after.groupId, commit.epoch),
        recordKey: commit.recordKey,
        items,
        silent: false,
      });
    }
    await deps.groups.markFannedOut(after.groupId, commit.epoch);
  };

  const staleEpoch = (groupId: Uint8Array, current: number, asked: number) =>
    new GuardynError(
      grpcStatus.ABORTED,
      "STALE_EPOCH",
      `the group is at epoch ${current}, not ${asked}: fetch and process the missing commits`,
      EpochConflict.encode({ groupId, currentEpoch: current }).finish(),
    );

  return {
    async createGroup(request, ctx) {
      const auth = requireAuth(ctx);
      const caller = deviceOf(auth);
      const groupId = checkGroupId(request.groupId);
      checkBytes(request.groupInfo, "group_info", 1, GROUP_LIMITS.groupInfoMaxBytes);
      const impl = await suiteImplById(request.cipherSuite).catch(() => {
        throw invalidArgument(`cipher_suite ${request.cipherSuite} is not supported`);
      });
      deps.limiters.creates.take(identityOf(caller), "group creations");
      const view = await verifyGroupInfo(request.groupInfo, { groupId, epoch: 0n }, impl)
        .catch(refusal);
      if (view.members.length !== 1 || view.members[0]!.identity !== identityOf(caller)) {
        throw invalidArgument("a new group's only member must be the calling device");
      }
      const now = deps.now();
      const created = await deps.groups.create({
        groupId,
        cipherSuite: request.cipherSuite,
        creator: caller,
        groupInfo: request.groupInfo,
        nowMs: now,
      });
      if (!created) {
        // A retry of our own creation answers as the first did.
        const state = await deps.groups.get(groupId);
        const own = state && state.epoch === 0 && state.members.length === 1 &&
          identityOf(state.members[0]!.device) === identityOf(caller);
        if (!own) {
          throw new GuardynError(grpcStatus.ALREADY_EXISTS, "ALREADY_EXISTS", "group_id is taken");
        }
        return { epoch: 0, createdAtMs: state.createdAtMs };
      }
      return { epoch: 0, createdAtMs: now };
    },

    async sendCommit(request, ctx) {
      const auth = requireAuth(ctx);
      const caller = deviceOf(auth);
      const groupId = checkGroupId(request.groupId);
      const epoch = checkEpoch(request.epoch);
      checkBytes(request.commit, "commit", 1, GROUP_LIMITS.commitMaxBytes);
      checkBytes(request.welcome, "welcome", 0, GROUP_LIMITS.welcomeMaxBytes);
      checkBytes(request.groupInfo, "group_info", 1, GROUP_LIMITS.groupInfoMaxBytes);
      const added = checkDevices(request.addedDevices, "added_devices", GROUP_LIMITS.changesMax);
      const removed = checkDevices(
        request.removedDevices,
        "removed_devices",
        GROUP_LIMITS.changesMax,
      );
      const clientMessageId = checkClientMessageId(request.clientMessageId);
      if ((added.length > 0) !== (request.welcome.byteLength > 0)) {
        throw invalidArgument("a welcome is required exactly when the commit adds devices");
      }
      deps.limiters.commits.take(identityOf(caller), "commits");
      const recordKey = deliveryRecordKey(deps.recordSecret, caller, clientMessageId);
      const state = await memberState(groupId, caller);
      if (epoch !== state.epoch) {
        const answer = await earlierAnswer(deps.groups, groupId, epoch, recordKey);
        if (answer) return answer;
        deps.onCommit?.("stale");
        throw staleEpoch(groupId, state.epoch, epoch);
      }
      deps.limiters.groupCommits.take(pageToken(groupId), "commits to this group");
      const impl = await suiteImplById(state.cipherSuite);
      const view = await viewOf(state).catch(refusal);
      if (view.context.epoch !== BigInt(epoch)) {
        throw failedPrecondition(
          "the group has no GroupInfo of its current epoch; a member must publish one",
          "INVALID_ARGUMENT",
        );
      }
      let change;
      try {
        const verified = await verifyCommit(request.commit, view, impl).catch(refusal);
        change = rosterAfterCommit(view.members, state.members, verified, caller, {
          added,
          removed,
        });
        if (change.members.length > GROUP_MEMBERS_MAX) {
          throw resourceExhausted(`a group has at most ${GROUP_MEMBERS_MAX} member devices`);
        }
        await checkAddedDevices(deps, change.added, verified.addedKeyPackageRefs);
        const next = await verifyGroupInfo(request.groupInfo, {
          groupId,
          epoch: BigInt(epoch + 1),
        }, impl).catch(refusal);
        checkNextView(next, change.tree, verified.sender);
      } catch (error) {
        deps.onCommit?.("refused");
        throw error;
      }
      const now = deps.now();
      const commit: StoredCommit = {
        epoch,
        commit: request.commit,
        welcome: request.welcome,
        // Joiners need this epoch's tree, which their Welcome leaves out.
        groupInfo: added.length > 0 ? request.groupInfo : new Uint8Array(),
        sender: caller,
        recordKey,
        added: change.added,
        // Devices the server already dropped (revoked) get nothing more.
        removed: change.removed.filter((d) => isMember(state, d)),
        serverTimestampMs: now,
      };
      const outcome = await deps.groups.commit({
        groupId,
        epoch,
        members: change.members,
        commit,
        groupInfo: request.groupInfo,
        nowMs: now,
        retentionMs: deps.commitRetentionMs,
      });
      if (!outcome.applied) {
        const answer = await earlierAnswer(deps.groups, groupId, epoch, recordKey);
        if (answer) return answer;
        deps.onCommit?.("stale");
        throw staleEpoch(groupId, outcome.currentEpoch, epoch);
      }
      deps.onCommit?.("accepted");
      const after = await deps.groups.get(groupId);
      if (after) await fanOutCommit(after, commit);
      return { epoch: epoch + 1, serverTimestampMs: now };
    },

    async sendGroupMessage(request, ctx) {
      const auth = requireAuth(ctx);
      const caller = deviceOf(auth);
      const groupId = checkGroupId(request.groupId);
      const epoch = checkEpoch(request.epoch);
      checkBytes(
        request.privateMessage,
        "private_message",
        1,
        GROUP_LIMITS.privateMessageMaxBytes,
      );
      const clientMessageId = checkClientMessageId(request.clientMessageId);
      const framed = mlsGroupIdOf(request.privateMessage);
      if (
        !framed || request.privateMessage[3] !== 2 || !constantTimeEqual(framed, groupId)
      ) {
        throw invalidArgument("private_message must be an MLS PrivateMessage of this group");
      }
      deps.limiters.sends.take(identityOf(caller), "group messages");
      const state = await memberState(groupId, caller);
      if (epoch !== state.epoch) throw staleEpoch(groupId, state.epoch, epoch);
      const others = state.members.map((m) => m.device)
        .filter((d) => identityOf(d) !== identityOf(caller)).sort(byIdentity);
      deps.limiters.groupMessages.take(pageToken(groupId), "messages to this group");
      if (request.ephemeral) {
        return sendEphemeral(deps, caller, clientMessageId, request.privateMessage, others);
      }
      const result = await fanOut(fanOutDeps, {
        sender: caller,
        clientMessageId,
        recordKey: deliveryRecordKey(deps.recordSecret, caller, clientMessageId),
        items: others.map((recipient) => ({
          recipient,
          type: EnvelopeType.ENVELOPE_TYPE_MLS_PRIVATE_MESSAGE,
          content: request.privateMessage,
        })),
        silent: request.silent,
      });
      return {
        serverTimestampMs: result.duplicate ? 0 : result.serverTimestampMs,
        recipientCount: result.duplicate ? 0 : result.written,
        duplicate: result.duplicate,
      };
    },

    async getGroupState(request, ctx) {
      const auth = requireAuth(ctx);
      const caller = deviceOf(auth);
      const groupId = checkGroupId(request.groupId);
      const state = await deps.groups.get(groupId);
      // A device of an account with a member device may read it (a new device joining).
      if (!state || !state.members.some((m) => m.device.accountId === caller.accountId)) {
        throw notFound("no such group");
      }
      await finishFanOut(state);
      return {
        groupId,
        epoch: state.epoch,
        cipherSuite: state.cipherSuite,
        members: state.members.map((m) => ({ ...m.device })),
        groupInfo: state.groupInfo,
        groupInfoEpoch: state.groupInfoEpoch,
        updatedAtMs: state.updatedAtMs,
      };
    },

    async fetchCommits(request, ctx) {
      const auth = requireAuth(ctx);
      const caller = deviceOf(auth);
      const groupId = checkGroupId(request.groupId);
      const since = checkEpoch(request.sinceEpoch);
      const limit = checkLimit(
        request.limit,
        "limit",
        GROUP_LIMITS.commitsDefault,
        GROUP_LIMITS.commitsMax,
      );
      const state = await deps.groups.get(groupId);
      // Removed devices may still fetch the commit that removed them; others must be members.
      const commits = state ? await deps.groups.commits(groupId, since, limit) : [];
      const allowed = state && (isMember(state, caller) ||
        commits.some((c) => c.removed.some((d) => identityOf(d) === identityOf(caller))));
      if (!state || !allowed) {
        throw permissionDenied("this device is not a member of the group", "NOT_A_MEMBER");
      }
      if (since < state.epoch && (commits.length === 0 || commits[0]!.epoch !== since)) {
        throw failedPrecondition(
          `commits from epoch ${since} are no longer kept; rejoin the group`,
          "COMMITS_PRUNED",
        );
      }
      return {
        commits: commits.map((c) => ({
          epoch: c.epoch,
          commit: c.commit,
          sender: { ...c.sender },
          serverTimestampMs: c.serverTimestampMs,
          groupInfo: c.groupInfo,
        })),
        currentEpoch: state.epoch,
      };
    },

    async leaveGroup(request, ctx) {
      const auth = requireAuth(ctx);
      const caller = deviceOf(auth);
      const groupId = checkGroupId(request.groupId);
      const epoch = checkEpoch(request.epoch);
      checkBytes(request.removeProposal, "remove_proposal", 1, GROUP_LIMITS.proposalMaxBytes);
      deps.limiters.commits.take(identityOf(caller), "commits");
      const state = await memberState(groupId, caller);
      if (epoch !== state.epoch) throw staleEpoch(groupId, state.epoch, epoch);
      if (state.members.length === 1) {
        await deps.groups.delete(groupId);
        return { serverTimestampMs: deps.now() };
      }
      const view = await viewOf(state).catch(refusal);
      const leaf = state.members.find((m) => identityOf(m.device) === identityOf(caller))!;
      checkSelfRemove(request.removeProposal, view, leaf.leafIndex);
      const others = state.members.map((m) => m.device)
        .filter((d) => identityOf(d) !== identityOf(caller)).sort(byIdentity);
      const result = await fanOut(fanOutDeps, {
        sender: caller,
        clientMessageId: `mls-leave.${epoch}`,
        recordKey: deliveryRecordKey(deps.recordSecret, caller, `mls-leave.${epoch}`),
        items: others.map((recipient) => ({
          recipient,
          type: EnvelopeType.ENVELOPE_TYPE_MLS_PUBLIC_MESSAGE,
          content: request.removeProposal,
        })),
        silent: true,
      });
      return { serverTimestampMs: result.serverTimestampMs };
    },

    async listGroups(request, ctx) {
      const auth = requireAuth(ctx);
      const caller = deviceOf(auth);
      const size = checkLimit(
        request.page?.pageSize ?? 0,
        "page.page_size",
        GROUP_LIMITS.pageDefault,
        GROUP_LIMITS.pageMax,
      );
      const after = pageAfter(request.page?.pageToken ?? "");
      const page = await deps.groups.groupsOf(caller, after, size);
      return {
        groups: page.map((g) => ({ groupId: g.groupId, epoch: g.epoch })),
        nextPageToken: page.length === size ? pageToken(page.at(-1)!.groupId) : "",
      };
    },
  };
}

/** A commit notice in a mailbox: the commit was too large to carry; fetch it. */
const COMMIT_NOTICE = new Uint8Array([0]);

function deviceOf(auth: { accountId: string; deviceId: string }): DeviceRef {
  return { accountId: auth.accountId, deviceId: auth.deviceId };
}

function isMember(state: GroupState, device: DeviceRef): boolean {
  const id = identityOf(device);
  return state.members.some((m) => identityOf(m.device) === id);
}

function byIdentity(a: DeviceRef, b: DeviceRef): number {
  const x = identityOf(a);
  const y = identityOf(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Delivery-check failures as INVALID_ARGUMENT naming the check. */
function refusal(error: unknown): never {
  if (error instanceof DeliveryCheckError) {
    throw invalidArgument(`MLS check failed (${error.code}): ${error.message}`);
  }
  throw error;
}

/** The answer to a retry whose first attempt won `epoch`, if it did. */
async function earlierAnswer(
  groups: GroupStore,
  groupId: Uint8Array,
  epoch: number,
  recordKey: Uint8Array,
) {
  const [logged] = await groups.commits(groupId, epoch, 1);
  if (logged?.epoch === epoch && constantTimeEqual(logged.recordKey, recordKey)) {
    return { epoch: epoch + 1, serverTimestampMs: logged.serverTimestampMs };
  }
  return undefined;
}

/** Every added device exists, and its key package was published by it and handed out. */
async function checkAddedDevices(
  deps: GroupServiceDeps,
  added: readonly DeviceRef[],
  refs: readonly string[],
): Promise<void> {
  for (const [i, device] of added.entries()) {
    const known = await deps.auth.devices.get(device.accountId, device.deviceId);
    if (!known) throw invalidArgument(`added device ${identityOf(device)} does not exist`);
    const ref = refs[i]!;
    const claimed = await deps.groups.claimed(device, [ref], deps.now());
    if (!claimed.has(ref)) {
      throw invalidArgument(
        `the key package added for ${identityOf(device)} is not one that device published ` +
          "and ClaimKeyPackages handed out",
      );
    }
  }
}

/** The new epoch's GroupInfo shows the roster the server computed and is the committer's. */
function checkNextView(
  next: VerifiedGroupInfo,
  members: readonly { leafIndex: number; device: DeviceRef }[],
  sender: { type: string; leafIndex?: number },
): void {
  const expected = members.map((m) => `${m.leafIndex}=${identityOf(m.device)}`).join(",");
  const actual = next.members.map((m) => `${m.leafIndex}=${m.identity}`).join(",");
  if (expected !== actual) {
    throw invalidArgument("group_info does not show the roster this commit produces");
  }
  if (sender.type !== "member" || next.signer !== sender.leafIndex) {
    throw invalidArgument("group_info must be signed by the committer");
  }
}

/** LeaveGroup carries a signed Remove proposal of the caller's own leaf, for this epoch. */
function checkSelfRemove(
  proposal: Uint8Array,
  view: VerifiedGroupInfo,
  leafIndex: number,
): void {
  let inspected;
  try {
    inspected = inspectPublicMessage(proposal);
  } catch (error) {
    throw invalidArgument(`remove_proposal: ${(error as Error).message}`);
  }
  const remove = inspected.proposals[0];
  if (
    inspected.contentType !== "proposal" || inspected.sender.type !== "member" ||
    inspected.sender.leafIndex !== leafIndex || remove?.type !== "remove" ||
    remove.leafIndex !== leafIndex || inspected.epoch !== view.context.epoch ||
    !constantTimeEqual(inspected.groupId, view.context.groupId)
  ) {
    throw invalidArgument(
      "remove_proposal must be this device's Remove proposal of itself, for this group and epoch",
    );
  }
}

/** Typing and the like: to open streams only, never stored. */
async function sendEphemeral(
  deps: GroupServiceDeps,
  caller: DeviceRef,
  clientMessageId: string,
  content: Uint8Array,
  recipients: readonly DeviceRef[],
) {
  const now = deps.now();
  const data = (id: string) =>
    Envelope.encode({
      id,
      seq: 0,
      sender: { ...caller },
      clientMessageId,
      type: EnvelopeType.ENVELOPE_TYPE_MLS_PRIVATE_MESSAGE,
      content,
      serverTimestampMs: now,
      ephemeral: true,
      groupId: mlsGroupIdOf(content) ?? new Uint8Array(),
    }).finish();
  await Promise.all(recipients.map((r) => {
    const id = `e.${crypto.randomUUID()}`;
    return deps.bus.signal(r.accountId, r.deviceId, { kind: "payload", data: data(id) })
      .catch((error) => deps.log.warn("ephemeral envelope not sent", { error }));
  }));
  return { serverTimestampMs: now, recipientCount: recipients.length, duplicate: false };
}
