/**
 * What `deno task verify` proves about a running deployment, against plain gRPC/HTTP addresses
 * (port-forwards in a cluster, an in-process platform in tests):
 *   - every service answers grpc.health.v1 SERVING, overall and for each gRPC service it owns,
 *     and /readyz on its metrics port;
 *   - two throwaway accounts register through the auth service, and each reads the other back
 *     through the directory (so the accounts really landed in the shared store);
 *   - with messaging deployed: both publish keys, one sends a message, the other device
 *     receives exactly those bytes on its Receive stream and acknowledges them;
 *   - optionally the ingress routes an authenticated call for api.<DOMAIN> to the auth service;
 *   - the accounts are deleted again.
 * No password, token or message body is ever printed.
 */

import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import {
  encodePublicKey,
  generateIdentityKeyPair,
  generateLastResortKemPrekey,
  generateSignedPrekey,
  toPublicPrekey,
} from "../crypto/mod.ts";
import {
  AuthServiceClient,
  DirectoryServiceClient,
  KeyDirectoryServiceClient,
} from "../proto/gen/guardyn/v1/auth.ts";
import { Platform } from "../proto/gen/guardyn/v1/common.ts";
import {
  EnvelopeType,
  MessagingServiceClient,
  type ReceiveRequest,
  type ReceiveResponse,
} from "../proto/gen/guardyn/v1/messaging.ts";
import type { ServiceSpec } from "./kube_catalog.ts";
import { constantTimeEqual } from "../crypto/primitives.ts";

export interface Endpoint {
  /** gRPC address, host:port. */
  grpc: string;
  /** Base URL of the metrics/ops HTTP server, when reachable. */
  metrics?: string;
}

export interface VerifyTarget {
  specs: readonly ServiceSpec[];
  /** One endpoint per deployed service name. */
  endpoints: ReadonlyMap<string, Endpoint>;
  /** The ingress: address to dial, the host it serves (api.<DOMAIN>), TLS or plain h2c. */
  ingress?: { address: string; authority: string; tls: boolean };
  /** Per-call deadline. */
  timeoutMs?: number;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
  ms: number;
}

const DEFAULT_TIMEOUT_MS = 20_000;
/** Own connections per client: closing one really closes its socket. */
const OWN_CONNECTION: grpc.ClientOptions = { "grpc.use_local_subchannel_pool": 1 };

type Callback<Res> = (error: grpc.ServiceError | null, response: Res) => void;
type Unary<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: Callback<Res>,
) => grpc.ClientUnaryCall;

function call<Req, Res>(
  method: Unary<Req, Res>,
  request: Req,
  timeoutMs: number,
  token?: string,
): Promise<Res> {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set("authorization", `Bearer ${token}`);
  return new Promise((resolve, reject) => {
    method(request, metadata, { deadline: Date.now() + timeoutMs }, (error, response) => {
      if (error) reject(new Error(`${grpc.status[error.code] ?? error.code}: ${error.details}`));
      else resolve(response);
    });
  });
}

interface HealthClient extends grpc.Client {
  Check: Unary<{ service: string }, { status: string }>;
}

const HealthClientConstructor = grpc.makeGenericClientConstructor(
  healthService as unknown as grpc.ServiceDefinition,
  "Health",
);

/** grpc.health.v1 Check for each name ("" is the whole server). */
export async function healthStatuses(
  address: string,
  names: readonly string[],
  timeoutMs: number,
  options: grpc.ClientOptions = {},
): Promise<Map<string, string>> {
  const client = new HealthClientConstructor(
    address,
    grpc.credentials.createInsecure(),
    { ...OWN_CONNECTION, ...options },
  ) as unknown as HealthClient;
  try {
    const statuses = new Map<string, string>();
    for (const name of names) {
      try {
        const response = await call(client.Check.bind(client), { service: name }, timeoutMs);
        statuses.set(name, response.status);
      } catch (error) {
        statuses.set(name, (error as Error).message);
      }
    }
    return statuses;
  } finally {
    client.close();
  }
}

/** A random lowercase username the auth service accepts (3..32 of [a-z0-9_]). */
export function throwawayUsername(label: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `verify_${label}_${hex}`.slice(0, 32);
}

function randomPassword(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes));
}

interface Account {
  username: string;
  password: string;
  accountId: string;
  deviceId: string;
  registrationId: number;
  accessToken: string;
}

class Runner {
  readonly results: CheckResult[] = [];
  constructor(private readonly onResult?: (result: CheckResult) => void) {}

  /** Runs one check; a failure is recorded (not thrown) and returns undefined. */
  async check<T>(name: string, fn: () => Promise<{ value: T; detail: string }>) {
    const started = performance.now();
    try {
      const { value, detail } = await fn();
      this.record({ name, ok: true, detail, ms: performance.now() - started });
      return value;
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      this.record({ name, ok: false, detail, ms: performance.now() - started });
      return undefined;
    }
  }

  private record(result: CheckResult) {
    this.results.push(result);
    this.onResult?.(result);
  }
}

function receiveEnvelope(
  client: InstanceType<typeof MessagingServiceClient>,
  token: string,
  expected: Uint8Array,
  timeoutMs: number,
): Promise<string> {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  const stream: grpc.ClientDuplexStream<ReceiveRequest, ReceiveResponse> = client.receive(
    metadata,
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stream.cancel();
      reject(new Error(`the message did not arrive within ${timeoutMs} ms`));
    }, timeoutMs);
    stream.on("data", (event: ReceiveResponse) => {
      if (event.event?.$case !== "envelope") return;
      const envelope = event.event.value;
      if (!constantTimeEqual(envelope.content, expected)) return;
      clearTimeout(timer);
      stream.write({ kind: { $case: "ack", value: { envelopeIds: [envelope.id] } } });
      // Half-close: the server finishes the stream after the acknowledgement; cancel only if
      // it does not within a second.
      stream.end();
      const fallback = setTimeout(() => stream.cancel(), 1_000);
      stream.on("status", () => {
        clearTimeout(fallback);
        resolve(envelope.id);
      });
    });
    stream.on("error", (error: grpc.ServiceError) => {
      if (error.code === grpc.status.CANCELLED) return;
      clearTimeout(timer);
      reject(new Error(`Receive stream failed: ${error.details || error.message}`));
    });
  });
}

async function publishKeys(
  keys: InstanceType<typeof KeyDirectoryServiceClient>,
  account: Account,
  timeoutMs: number,
) {
  const identity = await generateIdentityKeyPair();
  const token = account.accessToken;
  await call(
    keys.setIdentityKey.bind(keys),
    {
      identityKey: encodePublicKey(identity.publicKey),
    },
    timeoutMs,
    token,
  );
  const signed = toPublicPrekey(await generateSignedPrekey(identity, 1));
  await call(
    keys.uploadSignedPrekey.bind(keys),
    {
      signedPrekey: { keyId: signed.id, publicKey: signed.publicKey, signature: signed.signature },
    },
    timeoutMs,
    token,
  );
  const lastResort = toPublicPrekey(await generateLastResortKemPrekey(identity, 1000));
  await call(
    keys.setLastResortKyberPrekey.bind(keys),
    {
      prekey: {
        keyId: lastResort.id,
        publicKey: lastResort.publicKey,
        signature: lastResort.signature,
      },
    },
    timeoutMs,
    token,
  );
}

/** Runs every check; returns all results (verification failed when any is not ok). */
export async function verifyDeployment(
  target: VerifyTarget,
  onResult?: (result: CheckResult) => void,
): Promise<CheckResult[]> {
  const timeoutMs = target.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const run = new Runner(onResult);

  for (const spec of target.specs) {
    const endpoint = target.endpoints.get(spec.name);
    if (!endpoint) {
      await run.check(`${spec.name}: reachable`, () => {
        throw new Error("no endpoint (not deployed or no port-forward)");
      });
      continue;
    }
    await run.check(`${spec.name}: grpc.health.v1 SERVING`, async () => {
      const names = ["", ...spec.grpcServices];
      const statuses = await healthStatuses(endpoint.grpc, names, timeoutMs);
      const bad = names.filter((n) => statuses.get(n) !== "SERVING");
      if (bad.length > 0) {
        throw new Error(bad.map((n) => `${n || "(server)"}: ${statuses.get(n)}`).join("; "));
      }
      return { value: true, detail: `${names.length - 1} service(s) and the server` };
    });
    if (endpoint.metrics) {
      await run.check(`${spec.name}: /readyz`, async () => {
        const response = await fetch(`${endpoint.metrics}/readyz`, {
          signal: AbortSignal.timeout(timeoutMs),
        });
        const body = (await response.text()).trim();
        if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${body}`);
        return { value: true, detail: body };
      });
    }
  }

  const authEndpoint = target.endpoints.get("auth");
  if (!authEndpoint) return run.results;
  const credentials = grpc.credentials.createInsecure();
  const auth = new AuthServiceClient(authEndpoint.grpc, credentials, OWN_CONNECTION);
  const directory = new DirectoryServiceClient(authEndpoint.grpc, credentials, OWN_CONNECTION);
  const keys = new KeyDirectoryServiceClient(authEndpoint.grpc, credentials, OWN_CONNECTION);
  const messagingEndpoint = target.endpoints.get("messaging");
  const messaging = messagingEndpoint
    ? new MessagingServiceClient(messagingEndpoint.grpc, credentials, OWN_CONNECTION)
    : undefined;
  const accounts: Account[] = [];
  try {
    for (const label of ["alice", "bob"]) {
      const account = await run.check(`auth: register throwaway account ${label}`, async () => {
        const username = throwawayUsername(label);
        const password = randomPassword();
        const registrationId = 1 + crypto.getRandomValues(new Uint32Array(1))[0]! % 16_000;
        const response = await call(auth.register.bind(auth), {
          username,
          password,
          device: { name: "guardyn verify", platform: Platform.PLATFORM_LINUX, registrationId },
        }, timeoutMs);
        if (!response.accountId || !response.deviceId || !response.tokens?.accessToken) {
          throw new Error("Register answered without account, device or tokens");
        }
        const value: Account = {
          username,
          password,
          accountId: response.accountId,
          deviceId: response.deviceId,
          registrationId,
          accessToken: response.tokens.accessToken,
        };
        return { value, detail: `${username} -> account ${response.accountId}` };
      });
      if (account) accounts.push(account);
    }
    const [alice, bob] = accounts;
    if (!alice || !bob) return run.results;

    for (const [reader, subject] of [[alice, bob], [bob, alice]] as const) {
      await run.check(`auth: read ${subject.username} back through the directory`, async () => {
        const profile = await call(
          directory.getProfile.bind(directory),
          { lookup: { $case: "username", value: subject.username } },
          timeoutMs,
          reader.accessToken,
        );
        if (profile.accountId !== subject.accountId || profile.username !== subject.username) {
          throw new Error(`directory returned ${profile.username}/${profile.accountId}`);
        }
        return { value: true, detail: `same account id ${profile.accountId}` };
      });
    }
    await run.check("auth: the new device is listed", async () => {
      const listed = await call(auth.listDevices.bind(auth), {}, timeoutMs, alice.accessToken);
      if (!listed.devices.some((device) => device.deviceId === alice.deviceId)) {
        throw new Error("ListDevices does not include the registered device");
      }
      return { value: true, detail: `${listed.devices.length} device(s)` };
    });

    if (messaging) {
      const published = await run.check("keys: both devices publish prekeys", async () => {
        await publishKeys(keys, alice, timeoutMs);
        await publishKeys(keys, bob, timeoutMs);
        return { value: true, detail: "identity, signed prekey, last-resort KEM prekey" };
      });
      if (published) {
        await run.check("messaging: send to the other device and receive it", async () => {
          const content = crypto.getRandomValues(new Uint8Array(64));
          const received = receiveEnvelope(messaging, bob.accessToken, content, timeoutMs);
          const sent = await call(
            messaging.sendMessage.bind(messaging),
            {
              recipientAccountId: bob.accountId,
              clientMessageId: crypto.randomUUID(),
              envelopes: [{
                deviceId: bob.deviceId,
                registrationId: bob.registrationId,
                type: EnvelopeType.ENVELOPE_TYPE_RATCHET_MESSAGE,
                content,
              }],
              syncEnvelopes: [],
              ephemeral: false,
              silent: true,
              ttlSeconds: 0,
              urgent: false,
            },
            timeoutMs,
            alice.accessToken,
          ).catch((error) => {
            received.catch(() => {});
            throw error;
          });
          const envelopeId = await received;
          if (sent.envelopes[0]?.envelopeId !== envelopeId) {
            throw new Error("received an envelope with a different id than the one sent");
          }
          return { value: true, detail: `envelope ${envelopeId} delivered and acknowledged` };
        });
      }
    }

    if (target.ingress) {
      const { address, authority, tls } = target.ingress;
      await run.check(`ingress: ${authority} routes to the auth service`, async () => {
        const channel = tls ? grpc.credentials.createSsl() : credentials;
        const via = new DirectoryServiceClient(address, channel, {
          ...OWN_CONNECTION,
          "grpc.default_authority": authority,
        });
        try {
          const profile = await call(
            via.getProfile.bind(via),
            { lookup: { $case: "username", value: bob.username } },
            timeoutMs,
            alice.accessToken,
          );
          if (profile.accountId !== bob.accountId) throw new Error("wrong account through ingress");
          return { value: true, detail: `${address} as ${authority}` };
        } finally {
          via.close();
        }
      });
    }
  } finally {
    for (const account of accounts) {
      await run.check(`auth: delete throwaway account ${account.username}`, async () => {
        await call(
          auth.deleteAccount.bind(auth),
          { password: account.password },
          timeoutMs,
          account.accessToken,
        );
        return { value: true, detail: "deleted" };
      });
    }
    [auth, directory, keys, messaging].forEach((client) => client?.close());
  }
  return run.results;
}

export function formatResult(result: CheckResult): string {
  return `${result.ok ? "ok  " : "FAIL"}  ${result.name} (${
    result.ms.toFixed(0)
  } ms): ${result.detail}`;
}
