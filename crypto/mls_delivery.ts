/**
 * What the MLS delivery service can verify without any group secret (RFC 9420 §5, §6, §12.4.3):
 * a GroupInfo's signature and tree hash, and that a commit (a PublicMessage) names the group
 * and epoch of that GroupInfo and is signed by the member leaf it names, with the key that
 * leaf has in the GroupInfo's ratchet tree. Clients still verify everything themselves; this
 * keeps forged or misaddressed commits from ever being ordered, stored or fanned out.
 *
 * Pure: no I/O. The GroupInfo members publish with each commit is the server's view of the
 * next epoch's tree.
 */
import { encodeMlsMessage, type GroupContext, type MLSMessage } from "ts-mls";
import type { CiphersuiteImpl } from "ts-mls/crypto/ciphersuite.js";
import { verifyFramedContentSignature } from "ts-mls/framedContent.js";
import { ratchetTreeFromExtension, verifyGroupInfoSignature } from "ts-mls/groupInfo.js";
import type { RatchetTree } from "ts-mls/ratchetTree.js";
import { treeHashRoot } from "ts-mls/treeHash.js";
import {
  decodeWholeMessage,
  type InspectedHandshake,
  inspectPublicMessage,
  type RosterEntry,
} from "./mls_inspect.ts";
import { constantTimeEqual, sha256, toHex } from "./primitives.ts";

export type DeliveryErrorCode =
  | "malformed"
  | "wrong-group"
  | "wrong-epoch"
  | "bad-tree"
  | "bad-signature"
  | "not-member"
  | "unsupported";

export class DeliveryCheckError extends Error {
  constructor(readonly code: DeliveryErrorCode, message: string) {
    super(message);
    this.name = "DeliveryCheckError";
  }
}

/** A GroupInfo whose signature and tree hash verified. */
export interface VerifiedGroupInfo {
  context: GroupContext;
  tree: RatchetTree;
  /** Leaf index of the member that signed it. */
  signer: number;
  /** Member leaves and the identities of their credentials. */
  members: RosterEntry[];
}

/** A commit that verified against a GroupInfo. */
export interface VerifiedCommit extends InspectedHandshake {
  /** For each Add, the SHA-256 of its KeyPackage as published (MLSMessage bytes), hex. */
  addedKeyPackageRefs: string[];
}

/**
 * Decodes and verifies an MLSMessage(GroupInfo) for `groupId` at `epoch`: it must carry the
 * ratchet tree, whose hash must be the context's tree hash, and be signed by the leaf it
 * names with that leaf's key.
 */
export async function verifyGroupInfo(
  bytes: Uint8Array,
  expected: { groupId: Uint8Array; epoch: bigint },
  impl: CiphersuiteImpl,
): Promise<VerifiedGroupInfo> {
  const message = decode(bytes);
  if (message.wireformat !== "mls_group_info") {
    throw new DeliveryCheckError("malformed", `expected a GroupInfo, got ${message.wireformat}`);
  }
  const info = message.groupInfo;
  const context = info.groupContext;
  if (!constantTimeEqual(context.groupId, expected.groupId)) {
    throw new DeliveryCheckError("wrong-group", "the GroupInfo names another group");
  }
  if (context.epoch !== expected.epoch) {
    throw new DeliveryCheckError(
      "wrong-epoch",
      `the GroupInfo is for epoch ${context.epoch}, expected ${expected.epoch}`,
    );
  }
  const tree = ratchetTreeFromExtension(info);
  if (tree === undefined) {
    throw new DeliveryCheckError("bad-tree", "the GroupInfo must carry the ratchet tree");
  }
  const hash = await treeHashRoot(tree, impl.hash).catch(() => undefined);
  if (hash === undefined || !constantTimeEqual(hash, context.treeHash)) {
    throw new DeliveryCheckError("bad-tree", "the ratchet tree does not match the tree hash");
  }
  const signerKey = leafSignatureKey(tree, info.signer);
  if (!signerKey || !await verifyGroupInfoSignature(info, signerKey, impl.signature)) {
    throw new DeliveryCheckError("bad-signature", "the GroupInfo signature does not verify");
  }
  return { context, tree, signer: info.signer, members: membersOf(tree) };
}

/**
 * Verifies a commit against the GroupInfo of the epoch it was made in: same group and epoch,
 * a member sender, that member's signature, inline proposals of supported types only.
 */
export async function verifyCommit(
  bytes: Uint8Array,
  view: VerifiedGroupInfo,
  impl: CiphersuiteImpl,
): Promise<VerifiedCommit> {
  let inspected: InspectedHandshake;
  try {
    inspected = inspectPublicMessage(bytes);
  } catch (error) {
    throw new DeliveryCheckError("malformed", (error as Error).message);
  }
  if (inspected.contentType !== "commit") {
    throw new DeliveryCheckError("unsupported", "expected a commit");
  }
  if (!constantTimeEqual(inspected.groupId, view.context.groupId)) {
    throw new DeliveryCheckError("wrong-group", "the commit names another group");
  }
  if (inspected.epoch !== view.context.epoch) {
    throw new DeliveryCheckError(
      "wrong-epoch",
      `the commit is for epoch ${inspected.epoch}, the group is at ${view.context.epoch}`,
    );
  }
  if (inspected.sender.type !== "member") {
    throw new DeliveryCheckError("unsupported", "only member commits are accepted");
  }
  if (inspected.proposalRefs > 0) {
    throw new DeliveryCheckError("unsupported", "send proposals inline in the commit");
  }
  const other = inspected.proposals.find((p) => p.type === "other");
  if (other && other.type === "other") {
    throw new DeliveryCheckError("unsupported", `proposal type ${other.proposalType}`);
  }
  const senderKey = leafSignatureKey(view.tree, inspected.sender.leafIndex);
  if (!senderKey) {
    throw new DeliveryCheckError("not-member", `leaf ${inspected.sender.leafIndex} is empty`);
  }
  const message = decode(bytes) as MLSMessage & { wireformat: "mls_public_message" };
  const { content, auth } = message.publicMessage;
  const signed = await verifyFramedContentSignature(
    senderKey,
    "mls_public_message",
    content,
    auth,
    view.context,
    impl.signature,
  ).catch(() => false);
  if (!signed) {
    throw new DeliveryCheckError("bad-signature", "the commit signature does not verify");
  }
  const addedKeyPackageRefs: string[] = [];
  if (content.contentType === "commit") {
    for (const entry of content.commit.proposals) {
      if (entry.proposalOrRefType !== "proposal") continue;
      const proposal = entry.proposal;
      if (proposal.proposalType === "add" && "add" in proposal) {
        const published = encodeMlsMessage({
          version: "mls10",
          wireformat: "mls_key_package",
          keyPackage: proposal.add.keyPackage,
        });
        addedKeyPackageRefs.push(toHex(sha256(published)));
      }
    }
  }
  return { ...inspected, addedKeyPackageRefs };
}

/** Member leaves of a tree with their credential identities, by leaf index. */
function membersOf(tree: RatchetTree): RosterEntry[] {
  const members: RosterEntry[] = [];
  for (let node = 0; node < tree.length; node += 2) {
    const entry = tree[node];
    if (entry?.nodeType !== "leaf") continue;
    const credential = entry.leaf.credential;
    if (credential.credentialType !== "basic") {
      throw new DeliveryCheckError("unsupported", "only basic credentials are used in Guardyn");
    }
    let identity: string;
    try {
      identity = new TextDecoder("utf-8", { fatal: true }).decode(credential.identity);
    } catch {
      throw new DeliveryCheckError("malformed", "a credential identity is not UTF-8");
    }
    members.push({ leafIndex: node / 2, identity });
  }
  return members;
}

function leafSignatureKey(tree: RatchetTree, leafIndex: number): Uint8Array | undefined {
  const node = tree[leafIndex * 2];
  return node?.nodeType === "leaf" ? node.leaf.signaturePublicKey : undefined;
}

function decode(bytes: Uint8Array): MLSMessage {
  try {
    return decodeWholeMessage(bytes);
  } catch (error) {
    throw new DeliveryCheckError("malformed", (error as Error).message);
  }
}
