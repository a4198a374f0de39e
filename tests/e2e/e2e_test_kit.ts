/**
 * The end-to-end world: the real services run in-process (auth, messaging, groups, media), on the embedded
 * store or on Cassandra + JetStream with TWO instances sharing the store and the bus, and
 * clients are the real SDK with profiles in a temporary folder. Clients alternate between the
 * instances, so on the cluster every conversation crosses instances.
 */

import { join } from "node:path";
import { deleteStreams, NATS_URL } from "../../services/bus/conformance/nats_server.ts";
import { type Backend, startPlatform, type TestPlatform } from "../support/platform.ts";
import { type ClientEvent, GuardynClient, type GuardynClientOptions } from "../../client/mod.ts";
import { waitUntil } from "../support/wait.ts";
import { s3VariablesFromEnv } from "../../services/store/blob_config.ts";

export const PASSWORD = "correct horse battery staple";
export const PASSPHRASE = "local profile passphrase";
/** Cheap profile key derivation: tests open many profiles. */
export const TEST_KDF = { memoryKiB: 256, iterations: 1, parallelism: 1 };
/** Small key batches keep registration fast; exhaustion tests shrink them further. */
export const TEST_KEYS = {
  prekeyTarget: 8,
  prekeyLowWater: 3,
  keyPackageTarget: 2,
  keyPackageLowWater: 1,
};

export interface TestClient {
  client: GuardynClient;
  name: string;
  events: ClientEvent[];
  profilePath: string;
  address: string;
}

export interface World {
  backend: Backend;
  instances: TestPlatform[];
  dir: string;
  /** A client on instance `instance` (default: alternating). */
  client(
    name: string,
    options?: Partial<GuardynClientOptions> & { instance?: number },
  ): Promise<TestClient>;
  /** Reopens a client's profile (same device) after close(). */
  reopen(previous: TestClient, options?: Partial<GuardynClientOptions>): Promise<TestClient>;
  stop(): Promise<void>;
}

export const WORLD_SERVICES = ["auth", "messaging", "groups", "media"];

export async function startWorld(
  backend: Backend,
  extraEnv: Record<string, string> = {},
  services: readonly string[] = WORLD_SERVICES,
): Promise<World> {
  const id = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
  const env: Record<string, string> = {
    REGISTRATION_BURST: "10000",
    REGISTRATIONS_PER_MINUTE: "10000",
    LOGIN_FAILURES_BURST: "100",
    PREKEY_FETCH_BURST: "1000",
    PREKEY_FETCH_PER_MINUTE: "10000",
    MESSAGING_SEND_BURST: "10000",
    MESSAGING_SEND_PER_SECOND: "10000",
    MESSAGING_STREAM_OPENS_PER_MINUTE: "10000",
    MESSAGING_POLL_INTERVAL_MS: "2000",
    ...(backend === "cluster"
      ? {
        NATS_STREAM: `GUARDYN_E2E_${id}`,
        NATS_SUBJECT_PREFIX: `guardyn.e2e${id}.events`,
        // The cluster stack keeps media on S3 (versitygw, started by deno task test).
        MEDIA_BACKEND: "s3",
        ...s3VariablesFromEnv(),
      }
      : {}),
    ...extraEnv,
  };
  const first = await startPlatform(services, { backend, env });
  const instances = [first];
  if (backend === "cluster") {
    instances.push(await startPlatform(services, { shared: first, env }));
  }
  const dir = await Deno.makeTempDir({ prefix: "guardyn-e2e-" });
  const clients = new Set<TestClient>();
  let next = 0;

  const open = async (
    name: string,
    profilePath: string,
    address: string,
    options: Partial<GuardynClientOptions>,
  ): Promise<TestClient> => {
    const client = await GuardynClient.open({
      server: address,
      profilePath,
      passphrase: PASSPHRASE,
      deviceName: name,
      kdf: TEST_KDF,
      keyPolicy: TEST_KEYS,
      backoff: { baseMs: 50, capMs: 1_000 },
      ...options,
    });
    const events: ClientEvent[] = [];
    client.on((event) => events.push(event));
    const handle = { client, name, events, profilePath, address };
    clients.add(handle);
    return handle;
  };

  return {
    backend,
    instances,
    dir,
    client(name, options = {}) {
      const instance = options.instance ?? next++ % instances.length;
      const profilePath = join(dir, `${name}-${crypto.randomUUID().slice(0, 8)}.profile`);
      return open(name, profilePath, instances[instance % instances.length]!.address, options);
    },
    reopen(previous, options = {}) {
      clients.delete(previous);
      return open(previous.name, previous.profilePath, options.server ?? previous.address, options);
    },
    async stop() {
      // Clients first: a server GOAWAY reaching a live client session can abort Deno
      // (denoland/deno#36788).
      await Promise.allSettled([...clients].map((c) => c.client.close()));
      await new Promise((resolve) => setTimeout(resolve, 100));
      for (const instance of instances.slice(1)) await instance.stop();
      await first.stop();
      if (backend === "cluster") await deleteStreams(NATS_URL, [env.NATS_STREAM!]);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Registers `name` (unique username derived from it) on a fresh client and connects it. */
export async function registered(
  world: World,
  name: string,
  options: Partial<GuardynClientOptions> & { instance?: number } = {},
) {
  const handle = await world.client(name, options);
  await handle.client.register(uniqueName(name), PASSWORD);
  handle.client.connect();
  await waitUntil(() => handle.client.online, `${name} online`);
  return handle;
}

export function uniqueName(label: string): string {
  return `${label.toLowerCase().replace(/[^a-z0-9_]/g, "").slice(0, 12)}_${
    crypto.randomUUID().replaceAll("-", "").slice(0, 12)
  }`;
}

/** Bodies of a conversation as one client sees it, in order. */
export function bodies(handle: TestClient, peer: string): string[] {
  return handle.client.messages(peer).map((m) => m.body);
}

/**
 * A messaging instance may accept a send that matches the device set it saw up to 1 s ago
 * (its directory cache, services/messaging/directory.ts). Tests that need a just-added or
 * just-removed device to count wait this long first, as real senders eventually do.
 */
export function directoryCacheExpiry(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 1_100));
}
