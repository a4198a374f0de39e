/**
 * Everything a device keeps locally, in memory, and its encoding as the (encrypted) profile
 * payload. The parts own their own bounds and encodings; this file only composes them.
 */

import {
  deserializeIdentityKeyPair,
  type IdentityKeyPair,
  serializeIdentityKeyPair,
} from "../crypto/mod.ts";
import { randomRegistrationId, utf8Decode, utf8Encode } from "./bytes.ts";
import { Contacts } from "./contacts.ts";
import { GroupBook } from "./group_book.ts";
import { History } from "./history.ts";
import { KeyPackageVault } from "./key_package_vault.ts";
import { PrekeyVault } from "./prekey_vault.ts";
import { PresenceBook } from "./presence_book.ts";
import { b64, bytes, corrupt, int, RecentSet, record, str } from "./records.ts";
import { SessionBook } from "./session_book.ts";
import type { TokenPair } from "./tokens.ts";

const STATE_VERSION = 1;
/** Envelope ids and (sender, client message id) pairs remembered for de-duplication. */
export const SEEN_KEPT = 10_000;

export interface AccountInfo {
  accountId: string;
  deviceId: string;
  username: string;
}

export class ProfileState {
  account: AccountInfo | undefined;
  tokens: TokenPair | undefined;
  identity: IdentityKeyPair | undefined;
  /** Picked when the profile is created; a new value would tell peers we reinstalled. */
  registrationId: number;
  deviceName: string;
  prekeys = new PrekeyVault();
  keyPackages = new KeyPackageVault();
  sessions = new SessionBook();
  contacts = new Contacts();
  history = new History();
  groups = new GroupBook();
  presence = new PresenceBook();
  seenEnvelopes = new RecentSet(SEEN_KEPT);
  seenMessages = new RecentSet(SEEN_KEPT);

  constructor(deviceName: string, registrationId = randomRegistrationId()) {
    this.deviceName = deviceName;
    this.registrationId = registrationId;
  }

  encode(): Uint8Array {
    return utf8Encode(JSON.stringify({
      version: STATE_VERSION,
      account: this.account ?? null,
      tokens: this.tokens ?? null,
      identity: this.identity ? b64(serializeIdentityKeyPair(this.identity)) : null,
      registrationId: this.registrationId,
      deviceName: this.deviceName,
      prekeys: this.prekeys,
      keyPackages: this.keyPackages,
      sessions: this.sessions,
      contacts: this.contacts,
      history: this.history,
      groups: this.groups,
      presence: this.presence,
      seenEnvelopes: this.seenEnvelopes,
      seenMessages: this.seenMessages,
    }));
  }

  static async decode(payload: Uint8Array): Promise<ProfileState> {
    let json: Record<string, unknown>;
    try {
      json = record(JSON.parse(utf8Decode(payload)), "profile");
    } catch {
      throw corrupt("not JSON");
    }
    if (json.version !== STATE_VERSION) throw corrupt(`unknown version ${String(json.version)}`);
    const state = new ProfileState(
      str(json.deviceName, "deviceName", 64),
      int(json.registrationId, "registrationId", 1, 0x7fff_ffff),
    );
    if (json.account !== null) {
      const a = record(json.account, "account");
      state.account = {
        accountId: str(a.accountId, "accountId", 64),
        deviceId: str(a.deviceId, "deviceId", 64),
        username: str(a.username, "username", 64),
      };
    }
    if (json.tokens !== null) {
      const t = record(json.tokens, "tokens");
      state.tokens = {
        accessToken: str(t.accessToken, "accessToken", 4096),
        accessExpiresAtMs: int(t.accessExpiresAtMs, "accessExpiresAtMs"),
        refreshToken: str(t.refreshToken, "refreshToken", 512),
        refreshExpiresAtMs: int(t.refreshExpiresAtMs, "refreshExpiresAtMs"),
        receivedAtMs: int(t.receivedAtMs, "receivedAtMs"),
      };
    }
    if (json.identity !== null) {
      state.identity = await deserializeIdentityKeyPair(bytes(json.identity, "identity"));
    }
    state.prekeys = PrekeyVault.fromJSON(json.prekeys);
    state.keyPackages = KeyPackageVault.fromJSON(json.keyPackages);
    state.sessions = SessionBook.fromJSON(json.sessions);
    state.contacts = Contacts.fromJSON(json.contacts);
    state.history = History.fromJSON(json.history);
    // Profiles saved before groups existed have none.
    state.groups = GroupBook.fromJSON(json.groups);
    state.presence = PresenceBook.fromJSON(json.presence);
    state.seenEnvelopes = RecentSet.fromJSON(SEEN_KEPT, json.seenEnvelopes, "seenEnvelopes");
    state.seenMessages = RecentSet.fromJSON(SEEN_KEPT, json.seenMessages, "seenMessages");
    return state;
  }
}
