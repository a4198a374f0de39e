/**
 * Test kit for the auth service: gRPC clients on a running platform and a device that owns
 * real keys (identity, prekeys, MLS key packages) generated with the crypto library.
 */

import {
  encodePublicKey,
  generateIdentityKeyPair,
  generateKemPrekeys,
  generateLastResortKemPrekey,
  generateOneTimePrekeys,
  generateSignedPrekey,
  type IdentityKeyPair,
  toPublicPrekey,
} from "../../crypto/keys.ts";
import { generateKeyPackage } from "../../crypto/mls.ts";
import {
  AuthServiceClient,
  AuthServiceService,
  DirectoryServiceClient,
  DirectoryServiceService,
  KeyDirectoryServiceClient,
  KeyDirectoryServiceService,
} from "../../proto/gen/guardyn/v1/auth.ts";
import { Platform } from "../../proto/gen/guardyn/v1/common.ts";
import { unary } from "./grpc.ts";
import { startPlatform, type TestPlatform } from "./platform.ts";
import { webClient } from "./web.ts";

export interface Clients {
  auth: InstanceType<typeof AuthServiceClient>;
  keys: InstanceType<typeof KeyDirectoryServiceClient>;
  directory: InstanceType<typeof DirectoryServiceClient>;
  close(): void;
}

/** Clients on the gRPC-Web listener at `address` (TestPlatform.address). */
export function clients(address: string): Clients {
  const auth = webClient<Clients["auth"]>(AuthServiceService, address);
  const keys = webClient<Clients["keys"]>(KeyDirectoryServiceService, address);
  const directory = webClient<Clients["directory"]>(DirectoryServiceService, address);
  return {
    auth,
    keys,
    directory,
    close: () => [auth, keys, directory].forEach((client) => client.close()),
  };
}

export const PASSWORD = "correct horse battery staple";

export const uniqueUsername = (label = "u") =>
  `${label}_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;

export function registration(name = "laptop", registrationId = 1234) {
  return { name, platform: Platform.PLATFORM_LINUX, registrationId };
}

export interface TestDevice {
  accountId: string;
  deviceId: string;
  username: string;
  accessToken: string;
  refreshToken: string;
}

export async function register(c: Clients, username = uniqueUsername()): Promise<TestDevice> {
  const response = await unary(c.auth.register.bind(c.auth), {
    username,
    password: PASSWORD,
    device: registration(),
  });
  return {
    accountId: response.accountId,
    deviceId: response.deviceId,
    username,
    accessToken: response.tokens!.accessToken,
    refreshToken: response.tokens!.refreshToken,
  };
}

export async function login(
  c: Clients,
  username: string,
  name = "phone",
  deviceId = "",
  registrationId = 1234,
): Promise<TestDevice> {
  const response = await unary(c.auth.login.bind(c.auth), {
    username,
    password: PASSWORD,
    device: registration(name, registrationId),
    deviceId,
  });
  return {
    accountId: response.accountId,
    deviceId: response.deviceId,
    username,
    accessToken: response.tokens!.accessToken,
    refreshToken: response.tokens!.refreshToken,
  };
}

/** Sets the identity key (first device) and publishes a full set of prekeys for `device`. */
export async function publishKeys(
  c: Clients,
  device: TestDevice,
  options: { identity?: IdentityKeyPair; oneTime?: number; kem?: number } = {},
): Promise<IdentityKeyPair> {
  const identity = options.identity ?? await generateIdentityKeyPair();
  const token = device.accessToken;
  if (!options.identity) {
    await unary(c.keys.setIdentityKey.bind(c.keys), {
      identityKey: encodePublicKey(identity.publicKey),
    }, token);
  }
  const signed = toPublicPrekey(await generateSignedPrekey(identity, 1));
  await unary(c.keys.uploadSignedPrekey.bind(c.keys), {
    signedPrekey: { keyId: signed.id, publicKey: signed.publicKey, signature: signed.signature },
  }, token);
  const lastResort = toPublicPrekey(await generateLastResortKemPrekey(identity, 1000));
  await unary(c.keys.setLastResortKyberPrekey.bind(c.keys), {
    prekey: {
      keyId: lastResort.id,
      publicKey: lastResort.publicKey,
      signature: lastResort.signature,
    },
  }, token);
  if ((options.oneTime ?? 0) > 0) {
    const prekeys = (await generateOneTimePrekeys(identity, 1, options.oneTime!)).map(
      toPublicPrekey,
    );
    await unary(c.keys.uploadOneTimePrekeys.bind(c.keys), {
      prekeys: prekeys.map((p) => ({ keyId: p.id, publicKey: p.publicKey })),
      replaceExisting: false,
    }, token);
  }
  if ((options.kem ?? 0) > 0) {
    const prekeys = (await generateKemPrekeys(identity, 1, options.kem!)).map(toPublicPrekey);
    await unary(c.keys.uploadKyberPrekeys.bind(c.keys), {
      prekeys: prekeys.map((p) => ({
        keyId: p.id,
        publicKey: p.publicKey,
        signature: p.signature,
      })),
      replaceExisting: false,
    }, token);
  }
  return identity;
}

export async function keyPackagesFor(device: TestDevice, count: number): Promise<Uint8Array[]> {
  const packages = [];
  for (let i = 0; i < count; i++) {
    packages.push((await generateKeyPackage(`${device.accountId}:${device.deviceId}`)).keyPackage);
  }
  return packages;
}

/**
 * Runs `fn` against an auth service of its own on the embedded store (registrations unlimited
 * unless `env` says otherwise), with clients; stops both afterwards.
 */
export async function withAuthService(
  env: Record<string, string>,
  fn: (c: Clients, platform: TestPlatform) => Promise<void>,
): Promise<void> {
  const platform = await startPlatform(["auth"], { env: { REGISTRATION_BURST: "1000", ...env } });
  const c = clients(platform.address);
  try {
    await fn(c, platform);
  } finally {
    c.close();
    await platform.stop();
  }
}
