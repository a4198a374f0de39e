/**
 * Storage ports: the interfaces services use. Every adapter (embedded SQLite, CQL) implements
 * them and passes the same conformance suite. Keys are scoped by owner and every range read
 * is bounded by both ends (a start cursor and a limit).
 */
import type { AuthStores } from "./auth_ports.ts";

/** A device's address: every device belongs to exactly one account. */
export interface DeviceRef {
  accountId: string;
  deviceId: string;
}

/** One ciphertext envelope waiting in a device mailbox. The server cannot read `content`. */
export interface MailboxEnvelope {
  /** Server-assigned, globally unique id; clients acknowledge by it. */
  id: string;
  /** Recipient device (the mailbox owner). */
  recipient: DeviceRef;
  /** Strictly increasing per recipient device; the delivery order. */
  seq: number;
  sender: DeviceRef;
  /** Sender's idempotency key; unique per sender device. */
  clientMessageId: string;
  /** Protocol-level envelope type (prekey message, ratchet message, MLS, ...), opaque here. */
  type: number;
  /** Ciphertext, opaque to the server. */
  content: Uint8Array;
  serverTimestampMs: number;
  expiresAtMs: number;
}

export interface MailboxDelivery {
  sender: DeviceRef;
  clientMessageId: string;
  /**
   * The idempotency record's key, `deliveryRecordKey(secret, sender, clientMessageId)`: the
   * record stores this keyed hash, never the sender or the client message id.
   */
  recordKey: Uint8Array;
  serverTimestampMs: number;
  expiresAtMs: number;
  /**
   * Until when the idempotency record is kept: a retry after it is a new message. Default and
   * latest: `expiresAtMs`. While envelopes of the delivery wait, the record also holds the
   * content digest, the times and the envelope ids (to answer a retry with the first result);
   * when the last of them is acknowledged, only the key stays, until this time.
   */
  recordUntilMs?: number;
  items: { recipient: DeviceRef; type: number; content: Uint8Array }[];
}

export interface MailboxDeliveryResult {
  /** True when this (sender device, clientMessageId) was already delivered: nothing new written. */
  duplicate: boolean;
  /**
   * The envelopes as stored (for a duplicate: as stored by the first delivery). Empty for a
   * duplicate whose envelopes were all acknowledged: nothing of them is kept.
   */
  envelopes: MailboxEnvelope[];
  /** The first delivery's time; 0 for a duplicate whose envelopes were all acknowledged. */
  serverTimestampMs: number;
}

export interface MailboxStore {
  /**
   * Writes one envelope per item into its recipient's mailbox, all or nothing, idempotent on
   * (sender device, clientMessageId): a retry returns the first result and writes nothing.
   */
  deliver(delivery: MailboxDelivery): Promise<MailboxDeliveryResult>;
  /** Envelopes of `owner` with seq > afterSeq, in seq order, at most `limit` (≤ MAILBOX_READ_MAX). */
  read(
    owner: DeviceRef,
    afterSeq: number,
    limit: number,
    nowMs: number,
  ): Promise<MailboxEnvelope[]>;
  /**
   * Deletes the owner's envelopes with these ids; ids of other mailboxes are ignored. When the
   * last envelope of a delivery goes, its record keeps only its key (see recordUntilMs).
   */
  ack(owner: DeviceRef, ids: string[]): Promise<number>;
  /** Number of unexpired envelopes waiting for `owner`. */
  count(owner: DeviceRef, nowMs: number): Promise<number>;
  /** Deletes up to `limit` expired envelopes; returns how many. */
  purgeExpired(nowMs: number, limit: number): Promise<number>;
  /**
   * Deletes a device's whole mailbox (device revoked or account deleted); its envelopes count
   * as acknowledged for their deliveries' records.
   */
  purgeDevice(owner: DeviceRef): Promise<number>;
}

export const MAILBOX_READ_MAX = 500;
export const MAILBOX_ACK_MAX = 500;

/** Which backend a store really runs on; logged at startup. */
export interface StoreInfo {
  backend: "sqlite" | "cql";
  /** Where it lives: a file path or contact points + keyspace (never credentials). */
  location: string;
  schemaVersion: number;
}

/**
 * The domain ports of a store. A new port adds itself from its own file by declaration
 * merging (`declare module "./ports.ts" { interface StorePorts { groups: GroupStore } }`) and
 * says how each backend builds it in services/runtime/store_ports.ts.
 */
export interface StorePorts {
  mailbox: MailboxStore;
  /** Accounts, devices, refresh tokens, prekeys, key packages, provisioning (auth_ports.ts). */
  auth: AuthStores;
}

/** An opened store: the domain ports plus lifecycle. */
export interface Store extends Readonly<StorePorts> {
  readonly info: StoreInfo;
  /** Cheap round trip to the backend, for readiness checks. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** How one backend builds every port from its connection (`C`). */
export type PortBuilders<C> = {
  [K in keyof StorePorts]: (connection: C) => Promise<StorePorts[K]>;
};

/** Builds every port, in parallel. */
export async function buildPorts<C>(builders: PortBuilders<C>, connection: C): Promise<StorePorts> {
  const names = Object.keys(builders) as (keyof StorePorts)[];
  const built = await Promise.all(names.map((name) => builders[name](connection)));
  return Object.fromEntries(names.map((name, i) => [name, built[i]])) as unknown as StorePorts;
}

// Limits every adapter enforces (added with the adapters; the values above are unchanged).
/** Envelopes in one delivery: one per recipient device, each device at most once. */
export const MAILBOX_DELIVERY_MAX_ITEMS = 1000;
/** Ciphertext bytes of one envelope (MLS Welcome messages are the largest). */
export const MAILBOX_CONTENT_MAX_BYTES = 256 * 1024;
/** Ciphertext bytes of all envelopes of one delivery. */
export const MAILBOX_DELIVERY_MAX_BYTES = 8 * 1024 * 1024;
/** Longest mailbox lifetime: expiresAtMs - serverTimestampMs. */
export const MAILBOX_TTL_MAX_MS = 90 * 24 * 3600 * 1000;
/** Characters of an account id, device id or client message id. */
export const MAILBOX_ID_MAX_CHARS = 128;
/** Rows purgeExpired removes per call. */
export const MAILBOX_PURGE_MAX = 10_000;
/** count() stops counting here: it answers "at least this many" for larger mailboxes. */
export const MAILBOX_COUNT_MAX = 10_000;
