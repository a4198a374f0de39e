/**
 * Guardyn's end-to-end encryption library: pure TypeScript over WebCrypto and @noble, no I/O,
 * for Deno, Node 20+ and browsers. Keys never leave the device that generated them.
 *
 * - Sessions (PQXDH/X3DH + Double Ratchet): `initiateSession`, `acceptSession`, `Session`.
 * - Keys and prekeys (33-byte libsignal-compatible public keys, XEdDSA signatures): keys.ts.
 * - Safety numbers (libsignal's numeric fingerprint): `safetyNumber`.
 * - MLS groups (RFC 9420 via ts-mls): `MlsGroup`, `generateKeyPackage`; server-side,
 *   secret-free inspection: `inspectPublicMessage`, `applyCommitToRoster`.
 * - Attachments (chunked STREAM AES-256-GCM): `encryptAttachment`, `decryptAttachment`.
 * - Presence grants (a capability per watcher, hashed for the server): `presenceGrantHash`.
 */

export * from "./session.ts";
export * from "./keys.ts";
export {
  newPresenceCapability,
  PRESENCE_CAPABILITY_BYTES,
  presenceGrantHash,
} from "./presence_grant.ts";
export { CryptoError, type CryptoErrorCode } from "./errors.ts";
export type { HandshakeOptions, InitialHandshake, PrekeyBundle } from "./x3dh.ts";
export {
  compareScannedFingerprint,
  encodeScannableFingerprint,
  FingerprintError,
  type SafetyNumber,
  safetyNumber,
  type SafetyNumberInput,
} from "./fingerprint.ts";
export {
  AttachmentError,
  decryptAttachment,
  type DecryptOptions as AttachmentDecryptOptions,
  encryptAttachment,
  type EncryptedAttachment,
  encryptedSize,
  type EncryptOptions as AttachmentEncryptOptions,
} from "./attachment.ts";
export {
  generateKeyPackage,
  GroupError,
  type IncomingMessage,
  keyPackageRef,
  type Member,
  MLS_SUITES,
  MlsGroup,
  type MlsSuite,
  type PendingCommit,
  privateKeyPackageRef,
  welcomeRecipients,
} from "./mls.ts";
export { applyCommitToRoster, inspectKeyPackage, inspectPublicMessage } from "./mls_inspect.ts";
export { LEAF_BINDING_EXTENSION, signLeafBinding, verifyLeafBinding } from "./mls_binding.ts";
