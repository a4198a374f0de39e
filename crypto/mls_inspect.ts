/**
 * What the delivery service may learn from MLS handshake messages without any group secret:
 * it reads PublicMessage commits and proposals (RFC 9420 §6.2) to order them by epoch, check
 * that the sender is a member, and mirror the roster. It cannot check signatures or membership
 * tags (those need the group context and epoch secrets); clients do.
 */
import { decodeMlsMessage, type MLSMessage, type Proposal } from "ts-mls";

export const MAX_INSPECTED_BYTES = 16 * 1024 * 1024;

export type InspectErrorCode = "malformed" | "wrong-wire-format" | "not-member" | "unsupported";

export class MlsInspectError extends Error {
  constructor(readonly code: InspectErrorCode, message: string) {
    super(message);
    this.name = "MlsInspectError";
  }
}

export type InspectedSender =
  | { type: "member"; leafIndex: number }
  | { type: "external"; senderIndex: number }
  | { type: "new_member_commit" }
  | { type: "new_member_proposal" };

export type InspectedProposal =
  | { type: "add"; identity: string; cipherSuite: string }
  | { type: "remove"; leafIndex: number }
  | { type: "update"; identity: string }
  | { type: "other"; proposalType: string | number };

export interface InspectedHandshake {
  groupId: Uint8Array;
  epoch: bigint;
  contentType: "commit" | "proposal";
  sender: InspectedSender;
  /** Proposals carried by value (a commit's list, or the single proposal). */
  proposals: InspectedProposal[];
  /** Proposals a commit includes by reference; the server cannot resolve these. */
  proposalRefs: number;
  /** The commit carries an UpdatePath: the committer's leaf (and maybe identity) changed. */
  hasPath: boolean;
  /** Identity in the committer's new leaf node, when the commit has a path. */
  pathIdentity?: string;
}

export interface RosterEntry {
  leafIndex: number;
  identity: string;
}

/** Decodes an MLSMessage(PublicMessage) handshake; throws MlsInspectError otherwise. */
export function inspectPublicMessage(bytes: Uint8Array): InspectedHandshake {
  const message = decodeWholeMessage(bytes);
  if (message.wireformat !== "mls_public_message") {
    throw new MlsInspectError(
      "wrong-wire-format",
      `handshake messages must be PublicMessage, got ${message.wireformat}`,
    );
  }
  const { content } = message.publicMessage;
  const sender = inspectSender(content.sender);
  const base = { groupId: content.groupId, epoch: content.epoch, sender };
  switch (content.contentType) {
    case "commit": {
      const inline = content.commit.proposals.flatMap((p) =>
        p.proposalOrRefType === "proposal" ? [inspectProposal(p.proposal)] : []
      );
      const path = content.commit.path;
      return {
        ...base,
        contentType: "commit",
        proposals: inline,
        proposalRefs: content.commit.proposals.length - inline.length,
        hasPath: path !== undefined,
        pathIdentity: path === undefined ? undefined : credentialIdentity(path.leafNode.credential),
      };
    }
    case "proposal":
      return {
        ...base,
        contentType: "proposal",
        proposals: [inspectProposal(content.proposal)],
        proposalRefs: 0,
        hasPath: false,
      };
    default:
      throw new MlsInspectError(
        "wrong-wire-format",
        "application data must travel as PrivateMessage",
      );
  }
}

/** Identity and suite of a published MLSMessage(KeyPackage), to check who uploaded it. */
export function inspectKeyPackage(bytes: Uint8Array): { identity: string; cipherSuite: string } {
  const message = decodeWholeMessage(bytes);
  if (message.wireformat !== "mls_key_package") {
    throw new MlsInspectError(
      "wrong-wire-format",
      `expected a KeyPackage, got ${message.wireformat}`,
    );
  }
  return {
    identity: credentialIdentity(message.keyPackage.leafNode.credential),
    cipherSuite: message.keyPackage.cipherSuite,
  };
}

/**
 * The roster after a commit, computed as every member computes it (RFC 9420 §12.3): removed
 * leaves become blank, then each added member takes the leftmost blank leaf (or a new one at the
 * right), in the order of the commit's proposals. Throws if the commit cannot apply to `roster`.
 */
export function applyCommitToRoster(
  roster: readonly RosterEntry[],
  commit: InspectedHandshake,
): RosterEntry[] {
  if (commit.contentType !== "commit") {
    throw new MlsInspectError("unsupported", "only commits change the roster");
  }
  if (commit.proposalRefs > 0) {
    throw new MlsInspectError(
      "unsupported",
      "commits that reference proposals cannot be mirrored; send proposals inline",
    );
  }
  const byLeaf = new Map(roster.map((m) => [m.leafIndex, m.identity]));
  const sender = commit.sender;
  if (sender.type !== "member" || !byLeaf.has(sender.leafIndex)) {
    throw new MlsInspectError("not-member", "commit sender is not a member of the group");
  }
  for (const proposal of commit.proposals) {
    if (proposal.type !== "remove") continue;
    if (!byLeaf.has(proposal.leafIndex)) {
      throw new MlsInspectError("not-member", `leaf ${proposal.leafIndex} is not a member`);
    }
    if (proposal.leafIndex === sender.leafIndex) {
      throw new MlsInspectError("unsupported", "a commit cannot remove its own sender");
    }
    byLeaf.delete(proposal.leafIndex);
  }
  let nextFree = 0;
  for (const proposal of commit.proposals) {
    if (proposal.type !== "add") continue;
    while (byLeaf.has(nextFree)) nextFree++;
    byLeaf.set(nextFree, proposal.identity);
  }
  if (commit.pathIdentity !== undefined) byLeaf.set(sender.leafIndex, commit.pathIdentity);
  return [...byLeaf].map(([leafIndex, identity]) => ({ leafIndex, identity }))
    .sort((a, b) => a.leafIndex - b.leafIndex);
}

/** Decodes a whole MLSMessage (nothing left over); MlsInspectError "malformed" otherwise. */
export function decodeWholeMessage(bytes: Uint8Array): MLSMessage {
  if (!(bytes instanceof Uint8Array) || bytes.length > MAX_INSPECTED_BYTES) {
    throw new MlsInspectError(
      "malformed",
      `MLS message must be a Uint8Array of at most ${MAX_INSPECTED_BYTES} bytes`,
    );
  }
  let decoded: [MLSMessage, number] | undefined;
  try {
    decoded = decodeMlsMessage(bytes, 0);
  } catch {
    decoded = undefined;
  }
  if (decoded === undefined || decoded[1] !== bytes.length) {
    throw new MlsInspectError("malformed", "malformed MLS message");
  }
  return decoded[0];
}

function inspectSender(
  sender: { senderType: string; leafIndex?: number; senderIndex?: number },
): InspectedSender {
  switch (sender.senderType) {
    case "member":
      return { type: "member", leafIndex: sender.leafIndex! };
    case "external":
      return { type: "external", senderIndex: sender.senderIndex! };
    case "new_member_commit":
      return { type: "new_member_commit" };
    case "new_member_proposal":
      return { type: "new_member_proposal" };
    default:
      throw new MlsInspectError("malformed", `unknown sender type ${sender.senderType}`);
  }
}

function inspectProposal(proposal: Proposal): InspectedProposal {
  switch (proposal.proposalType) {
    case "add":
      if ("add" in proposal) {
        return {
          type: "add",
          identity: credentialIdentity(proposal.add.keyPackage.leafNode.credential),
          cipherSuite: proposal.add.keyPackage.cipherSuite,
        };
      }
      break;
    case "remove":
      if ("remove" in proposal) return { type: "remove", leafIndex: proposal.remove.removed };
      break;
    case "update":
      if ("update" in proposal) {
        return {
          type: "update",
          identity: credentialIdentity(proposal.update.leafNode.credential),
        };
      }
      break;
  }
  return { type: "other", proposalType: proposal.proposalType };
}

function credentialIdentity(
  credential: { credentialType: string; identity?: Uint8Array },
): string {
  if (credential.credentialType !== "basic" || credential.identity === undefined) {
    throw new MlsInspectError("unsupported", "only basic credentials are used in Guardyn");
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(credential.identity);
  } catch {
    throw new MlsInspectError("malformed", "credential identity is not UTF-8");
  }
}

/**
 * The group id in the clear framing of an MLSMessage holding a PublicMessage or PrivateMessage
 * (RFC 9420 §6: version, wire format, then group_id<V>), read from the header only; undefined
 * for any other message or malformed bytes. Lets a server label an envelope with its group
 * without decoding the whole message.
 */
export function mlsGroupIdOf(bytes: Uint8Array): Uint8Array | undefined {
  if (!(bytes instanceof Uint8Array) || bytes.length < 5) return undefined;
  const version = (bytes[0]! << 8) | bytes[1]!;
  const wireFormat = (bytes[2]! << 8) | bytes[3]!;
  if (version !== 1 || (wireFormat !== 1 && wireFormat !== 2)) return undefined;
  const first = bytes[4]!;
  let length: number;
  let at: number;
  switch (first >> 6) {
    case 0:
      [length, at] = [first & 0x3f, 5];
      break;
    case 1:
      if (bytes.length < 6) return undefined;
      [length, at] = [((first & 0x3f) << 8) | bytes[5]!, 6];
      break;
    default:
      // Group ids are at most 255 bytes here; longer prefixes are not a group id we issue.
      return undefined;
  }
  if (length === 0 || at + length > bytes.length) return undefined;
  return bytes.slice(at, at + length);
}
