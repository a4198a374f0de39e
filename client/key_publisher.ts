/**
 * Publishes this device's keys and keeps the server's stock topped up: the signed prekey
 * (rotated when old), the last-resort ML-KEM prekey, one-time EC and ML-KEM prekeys, and MLS key
 * packages. Private halves are saved before their public halves are uploaded, so a crash never
 * leaves the server handing out a key this device cannot use.
 */

import {
  encodePublicKey,
  generateIdentityKeyPair,
  type IdentityKeyPair,
  type PublicPrekey,
} from "../crypto/mod.ts";
import type { Api } from "./api.ts";
import { randomRegistrationId } from "./bytes.ts";
import { GuardynClientError } from "./errors.ts";
import { KEY_PACKAGE_SUITE, KeyPackageVault } from "./key_package_vault.ts";
import { PrekeyVault } from "./prekey_vault.ts";
import type { ProfileState } from "./profile_state.ts";
import { SessionBook } from "./session_book.ts";

export interface KeyPolicy {
  /** One-time EC and ML-KEM prekeys the server should hold after a top-up. */
  prekeyTarget: number;
  /** Top up when the server holds fewer than this. */
  prekeyLowWater: number;
  /** MLS key packages after a top-up, and the low-water mark. */
  keyPackageTarget: number;
  keyPackageLowWater: number;
  /** Rotate the signed prekey when it is older than this. */
  signedPrekeyMaxAgeMs: number;
}

export const DEFAULT_KEY_POLICY: KeyPolicy = {
  prekeyTarget: 100,
  prekeyLowWater: 25,
  keyPackageTarget: 20,
  keyPackageLowWater: 5,
  signedPrekeyMaxAgeMs: 7 * 86_400_000,
};

/** The contract's bound on keys per upload call. */
const UPLOAD_CHUNK = 100;

export interface ReplenishReport {
  oneTimeAdded: number;
  kemAdded: number;
  keyPackagesAdded: number;
  signedRotated: boolean;
  lastResortSet: boolean;
}

export interface KeyPublisherDeps {
  api: Api;
  state: ProfileState;
  persist: () => Promise<void>;
  policy: KeyPolicy;
  now: () => number;
}

export class KeyPublisher {
  constructor(private readonly deps: KeyPublisherDeps) {}

  /**
   * A new device's first upload. The identity key goes first: the first device publishes it, a
   * linked device re-sends it as a check that its identity is the account's (same key: OK).
   */
  async publishAll(options: { signedAndLastResortDone?: boolean } = {}): Promise<void> {
    const { api } = this.deps;
    const identity = this.#identity();
    try {
      await api.authed(api.transport.keys.setIdentityKey.bind(api.transport.keys), {
        identityKey: encodePublicKey(identity.publicKey),
      }, { idempotent: true });
    } catch (error) {
      if (error instanceof GuardynClientError && error.code === "IDENTITY_KEY_ALREADY_SET") {
        throw new GuardynClientError(
          "IDENTITY_KEY_ALREADY_SET",
          "the account has another identity key than this device: link it again",
        );
      }
      throw error;
    }
    if (!options.signedAndLastResortDone) {
      await this.#rotateSigned(identity);
      await this.#setLastResort(identity);
    }
    await this.#addOneTime(identity, this.deps.policy.prekeyTarget, true);
    await this.#addKem(identity, this.deps.policy.prekeyTarget, true);
    await this.#addKeyPackages(this.deps.policy.keyPackageTarget, true);
  }

  /**
   * Replaces the account identity key from this device (AuthService's ChangeIdentityKey needs
   * the password): a new identity, signed prekey, last-resort key and registration id, then the
   * rest of the keys. Every session was made with the old identity and is dropped. When the
   * server refuses, the previous keys are put back.
   */
  async replaceIdentity(password: string): Promise<void> {
    const { api, state, persist, now } = this.deps;
    const previous = {
      identity: state.identity,
      registrationId: state.registrationId,
      prekeys: state.prekeys,
      keyPackages: state.keyPackages,
      sessions: state.sessions,
    };
    const identity = await generateIdentityKeyPair();
    let registrationId = randomRegistrationId();
    while (registrationId === previous.registrationId) registrationId = randomRegistrationId();
    state.identity = identity;
    state.registrationId = registrationId;
    state.prekeys = new PrekeyVault();
    state.keyPackages = new KeyPackageVault();
    const signedPrekey = await state.prekeys.newSignedPrekey(identity, now());
    const lastResort = await state.prekeys.newLastResortKem(identity, now());
    await persist();
    const keys = api.transport.keys;
    try {
      await api.authed(keys.changeIdentityKey.bind(keys), {
        password,
        identityKey: encodePublicKey(identity.publicKey),
        signedPrekey: signed(signedPrekey),
        lastResortKyberPrekey: signed(lastResort),
        registrationId,
      }, { idempotent: false });
    } catch (error) {
      Object.assign(state, previous);
      await persist();
      throw error;
    }
    state.sessions = new SessionBook();
    await persist();
    await this.publishAll({ signedAndLastResortDone: true });
  }

  /** Reads the server's stock and tops up what runs low. */
  async replenish(): Promise<ReplenishReport> {
    const { api, state, policy, now } = this.deps;
    const identity = this.#identity();
    const keys = api.transport.keys;
    const counts = await api.authed(keys.getPrekeyCounts.bind(keys), {}, { idempotent: true });
    const report: ReplenishReport = {
      oneTimeAdded: 0,
      kemAdded: 0,
      keyPackagesAdded: 0,
      signedRotated: false,
      lastResortSet: false,
    };
    const current = state.prekeys.currentSigned;
    if (
      !current || counts.signedPrekeyId !== current.id ||
      now() - current.createdAtMs > policy.signedPrekeyMaxAgeMs
    ) {
      await this.#rotateSigned(identity);
      report.signedRotated = true;
    }
    if (!counts.hasLastResortKyberPrekey) {
      await this.#setLastResort(identity);
      report.lastResortSet = true;
    }
    if (counts.oneTimePrekeyCount < policy.prekeyLowWater) {
      report.oneTimeAdded = policy.prekeyTarget - counts.oneTimePrekeyCount;
      await this.#addOneTime(identity, report.oneTimeAdded, false);
    }
    if (counts.kyberPrekeyCount < policy.prekeyLowWater) {
      report.kemAdded = policy.prekeyTarget - counts.kyberPrekeyCount;
      await this.#addKem(identity, report.kemAdded, false);
    }
    const packages = await api.authed(keys.getKeyPackageCount.bind(keys), {
      cipherSuite: KEY_PACKAGE_SUITE,
    }, { idempotent: true });
    if (packages.count < policy.keyPackageLowWater || !packages.hasLastResort) {
      report.keyPackagesAdded = Math.max(0, policy.keyPackageTarget - packages.count);
      await this.#addKeyPackages(report.keyPackagesAdded, false, !packages.hasLastResort);
    }
    return report;
  }

  #identity(): IdentityKeyPair {
    const identity = this.deps.state.identity;
    if (!identity || !this.deps.state.account) {
      throw new GuardynClientError("NOT_SIGNED_IN", "this device has no account keys");
    }
    return identity;
  }

  async #rotateSigned(identity: IdentityKeyPair): Promise<void> {
    const { api, state, persist, now } = this.deps;
    const prekey = await state.prekeys.newSignedPrekey(identity, now());
    await persist();
    await api.authed(api.transport.keys.uploadSignedPrekey.bind(api.transport.keys), {
      signedPrekey: signed(prekey),
    }, { idempotent: true });
  }

  async #setLastResort(identity: IdentityKeyPair): Promise<void> {
    const { api, state, persist, now } = this.deps;
    const prekey = await state.prekeys.newLastResortKem(identity, now());
    await persist();
    await api.authed(
      api.transport.keys.setLastResortKyberPrekey.bind(api.transport.keys),
      { prekey: signed(prekey) },
      { idempotent: true },
    );
  }

  async #addOneTime(identity: IdentityKeyPair, count: number, replace: boolean): Promise<void> {
    const { api, state, persist, now } = this.deps;
    if (count <= 0) return;
    const prekeys = await state.prekeys.newOneTimePrekeys(identity, count, now());
    await persist();
    for (let i = 0; i < prekeys.length; i += UPLOAD_CHUNK) {
      await api.authed(api.transport.keys.uploadOneTimePrekeys.bind(api.transport.keys), {
        prekeys: prekeys.slice(i, i + UPLOAD_CHUNK).map((p) => ({
          keyId: p.id,
          publicKey: p.publicKey,
        })),
        replaceExisting: replace && i === 0,
      }, { idempotent: false });
    }
  }

  async #addKem(identity: IdentityKeyPair, count: number, replace: boolean): Promise<void> {
    const { api, state, persist, now } = this.deps;
    if (count <= 0) return;
    const prekeys = await state.prekeys.newKemPrekeys(identity, count, now());
    await persist();
    for (let i = 0; i < prekeys.length; i += UPLOAD_CHUNK) {
      await api.authed(api.transport.keys.uploadKyberPrekeys.bind(api.transport.keys), {
        prekeys: prekeys.slice(i, i + UPLOAD_CHUNK).map(signed),
        replaceExisting: replace && i === 0,
      }, { idempotent: false });
    }
  }

  async #addKeyPackages(count: number, replace: boolean, lastResort = replace): Promise<void> {
    const { api, state, persist, now } = this.deps;
    const account = state.account!;
    const address = `${account.accountId}:${account.deviceId}`;
    const packages = await state.keyPackages.mint(address, count, false, now(), state.identity);
    const [lastResortPackage] = lastResort
      ? await state.keyPackages.mint(address, 1, true, now(), state.identity)
      : [];
    if (packages.length === 0 && !lastResortPackage) return;
    await persist();
    for (let i = 0; i < Math.max(packages.length, 1); i += UPLOAD_CHUNK) {
      await api.authed(api.transport.keys.uploadKeyPackages.bind(api.transport.keys), {
        cipherSuite: KEY_PACKAGE_SUITE,
        keyPackages: packages.slice(i, i + UPLOAD_CHUNK),
        lastResortKeyPackage: i === 0 && lastResortPackage ? lastResortPackage : new Uint8Array(),
        replaceExisting: replace && i === 0,
      }, { idempotent: false });
    }
  }
}

function signed(prekey: PublicPrekey) {
  return { keyId: prekey.id, publicKey: prekey.publicKey, signature: prekey.signature };
}
