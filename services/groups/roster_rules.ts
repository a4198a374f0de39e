/**
 * Pure: the roster mirror after a verified commit, and the checks that the request describes
 * that commit truthfully (its added and removed devices are exactly those of the proposals,
 * the committer is the caller, nobody's identity changes).
 */
import { applyCommitToRoster, MlsInspectError } from "../../crypto/mls_inspect.ts";
import type { VerifiedCommit } from "../../crypto/mls_delivery.ts";
import { invalidArgument, permissionDenied } from "../platform/errors.ts";
import type { GroupMember } from "../store/group_ports.ts";
import type { DeviceRef } from "../store/ports.ts";
import { deviceOfIdentity, identityOf } from "./request_rules.ts";

export interface RosterChange {
  /** The roster mirror after the commit: the tree's leaves minus devices dropped by the server. */
  members: GroupMember[];
  /** Every leaf of the tree after the commit (what the new GroupInfo must show). */
  tree: GroupMember[];
  added: DeviceRef[];
  removed: DeviceRef[];
}

/**
 * `tree` is the leaves of the current epoch's verified GroupInfo; `mirror` the server's roster,
 * which lacks the devices it dropped (revoked, deleted) that no commit removed yet.
 */
export function rosterAfterCommit(
  tree: readonly { leafIndex: number; identity: string }[],
  mirror: readonly GroupMember[],
  commit: VerifiedCommit,
  caller: DeviceRef,
  request: { added: readonly DeviceRef[]; removed: readonly DeviceRef[] },
): RosterChange {
  const members = tree.map((leaf) => {
    const device = deviceOfIdentity(leaf.identity);
    if (!device) throw invalidArgument(`leaf ${leaf.leafIndex} names no device`);
    return { leafIndex: leaf.leafIndex, device };
  });
  const byLeaf = new Map(members.map((m) => [m.leafIndex, m.device]));
  if (commit.sender.type !== "member") throw invalidArgument("only member commits are accepted");
  const committer = byLeaf.get(commit.sender.leafIndex);
  if (!committer || identityOf(committer) !== identityOf(caller)) {
    throw permissionDenied("the commit is signed by another member's leaf", "NOT_A_MEMBER");
  }
  if (commit.pathIdentity !== undefined && commit.pathIdentity !== identityOf(caller)) {
    throw invalidArgument("a commit cannot change the committer's identity");
  }
  for (const proposal of commit.proposals) {
    if (proposal.type === "update") {
      throw invalidArgument("update proposals are not accepted; commit with a path instead");
    }
  }
  let after;
  try {
    after = applyCommitToRoster(
      members.map((m) => ({ leafIndex: m.leafIndex, identity: identityOf(m.device) })),
      commit,
    );
  } catch (error) {
    if (error instanceof MlsInspectError) throw invalidArgument(error.message);
    throw error;
  }
  const removed = commit.proposals.flatMap((p) =>
    p.type === "remove" ? [byLeaf.get(p.leafIndex)!] : []
  );
  const added = commit.proposals.flatMap((p) => {
    if (p.type !== "add") return [];
    const device = deviceOfIdentity(p.identity);
    if (!device) throw invalidArgument(`an added credential names no device: "${p.identity}"`);
    return [device];
  });
  const current = new Set(members.map((m) => identityOf(m.device)));
  for (const device of added) {
    if (current.has(identityOf(device))) {
      throw invalidArgument(`${identityOf(device)} is already a member`);
    }
  }
  sameDevices(added, request.added, "added_devices");
  sameDevices(removed, request.removed, "removed_devices");
  const next = after.map((entry) => ({
    leafIndex: entry.leafIndex,
    device: deviceOfIdentity(entry.identity)!,
  }));
  // Devices the server dropped stay out of the mirror until a commit removes their leaves.
  const kept = new Set([...mirror.map((m) => identityOf(m.device)), ...added.map(identityOf)]);
  return {
    members: next.filter((m) => kept.has(identityOf(m.device))),
    tree: next,
    added,
    removed,
  };
}

function sameDevices(actual: readonly DeviceRef[], claimed: readonly DeviceRef[], field: string) {
  const a = new Set(actual.map(identityOf));
  const c = new Set(claimed.map(identityOf));
  if (a.size !== c.size || [...a].some((id) => !c.has(id))) {
    throw invalidArgument(`${field} must list exactly the devices the commit's proposals name`);
  }
}
