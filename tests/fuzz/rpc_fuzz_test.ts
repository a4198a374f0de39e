/**
 * Every unary RPC of every served service against random and mutated input (audit finding 15),
 * property-based with fast-check and bounded in runs: requests start from each method's own
 * message shape with fields replaced by random values of the same kind (oversized strings and
 * bytes, negative, huge and fractional numbers, unknown enum values, other accounts' ids), or
 * are raw bytes; each is sent with a valid, a missing and a forged token. Checked for every
 * call: never INTERNAL or UNKNOWN; every refusal carries a machine-readable reason and a message
 * that names the rule; a refused call changes nothing (the caller's account read back from the
 * store); and the server answers health afterwards.
 *
 * Streaming RPCs get one case of their own (a malformed message on the stream); their
 * behaviour is covered by their suites. Logout and DeleteAccount run with bad tokens only, so
 * the caller survives.
 */

import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import {
  AuthServiceService,
  DirectoryServiceService,
  KeyDirectoryServiceService,
} from "../../proto/gen/guardyn/v1/auth.ts";
import { MessagingServiceService } from "../../proto/gen/guardyn/v1/messaging.ts";
import { assert } from "../assert.ts";
import { clients, publishKeys, register, type TestDevice } from "../support/accounts_test_kit.ts";
import { startPlatform, type TestPlatform } from "../support/platform.ts";
import { NO_SANITIZERS } from "../support/wait.ts";
import { type RawWebClient, rawWebClient } from "../support/web.ts";

type Method = grpc.MethodDefinition<unknown, unknown>;

const SERVICES = {
  AuthService: AuthServiceService,
  KeyDirectoryService: KeyDirectoryServiceService,
  DirectoryService: DirectoryServiceService,
  MessagingService: MessagingServiceService,
} as const;

/** Methods that would end the caller's own login when they succeed. */
const SELF_ENDING = new Set(["logout", "deleteAccount"]);
const RUNS_PER_METHOD = 24;

/** A random value of the same kind as `sample`, biased toward edges and others' ids. */
function valueLike(sample: unknown, ids: string[], depth: number): fc.Arbitrary<unknown> {
  if (typeof sample === "string") {
    return fc.oneof(
      fc.constantFrom("", " ", "\u0000", "../..", "a".repeat(5_000), ...ids),
      fc.string({ maxLength: 80 }),
      fc.string({ unit: "binary", maxLength: 300 }),
    );
  }
  if (typeof sample === "number") {
    return fc.oneof(
      fc.constantFrom(0, -1, 1, 2 ** 31, 2 ** 53, -(2 ** 53), 999, 83),
      fc.integer(),
      fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => Math.trunc(n)),
    );
  }
  if (typeof sample === "boolean") return fc.boolean();
  if (sample instanceof Uint8Array) {
    return fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.constantFrom(new Uint8Array(33).fill(5), new Uint8Array(200_000)),
    );
  }
  if (Array.isArray(sample)) {
    return fc.array(fc.oneof(fc.string({ maxLength: 40 }), fc.uint8Array({ maxLength: 40 })), {
      maxLength: 3,
    });
  }
  if (sample && typeof sample === "object" && depth < 2) return shapeLike(sample, ids, depth + 1);
  return fc.constant(sample);
}

/** An object of `sample`'s shape with any subset of its fields replaced. */
function shapeLike(
  sample: object,
  ids: string[],
  depth = 0,
): fc.Arbitrary<Record<string, unknown>> {
  const fields = Object.entries(sample);
  return fc.tuple(
    ...fields.map(([, value]) => fc.option(valueLike(value, ids, depth), { freq: 2 })),
  ).map((values) => {
    const out: Record<string, unknown> = { ...sample };
    values.forEach((value, i) => {
      if (value !== null) out[fields[i]![0]] = value;
    });
    return out;
  });
}

/** The encoded request, or undefined when the encoder refuses the value. */
function encodable(method: Method) {
  return (value: unknown): Uint8Array | undefined => {
    try {
      return new Uint8Array(method.requestSerialize(value));
    } catch {
      return undefined;
    }
  };
}

interface Outcome {
  code: grpc.status;
  reason: string | undefined;
  details: string;
}

function call(
  client: RawWebClient,
  method: Method,
  body: Uint8Array,
  token: string | undefined,
): Promise<Outcome> {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set("authorization", `Bearer ${token}`);
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      method.path,
      (bytes: Uint8Array) => Buffer.from(bytes),
      (bytes: Buffer) => bytes,
      body,
      metadata,
      { deadline: Date.now() + 10_000 },
      (error) => {
        const reason = error?.metadata?.get("guardyn-error-reason")[0];
        resolve({
          code: error?.code ?? grpc.status.OK,
          reason: typeof reason === "string" ? reason : undefined,
          details: error?.details ?? "",
        });
      },
    );
  });
}

/** What the caller's account looks like in the store, to prove a refusal changed nothing. */
async function snapshot(platform: TestPlatform, me: TestDevice): Promise<string> {
  const { auth, mailbox } = platform.platform.deps.store;
  const device = { accountId: me.accountId, deviceId: me.deviceId };
  const [account, devices, prekeys, packages, mail] = await Promise.all([
    auth.accounts.byId(me.accountId),
    auth.devices.list(me.accountId),
    auth.prekeys.counts(device),
    auth.keyPackages.count(device, 1),
    mailbox.count(device, Date.now()),
  ]);
  return JSON.stringify({
    account: account && { ...account, identityKey: [...account.identityKey ?? []] },
    devices: devices.map((d) => ({ ...d, lastSeenAtMs: 0 })),
    prekeys,
    packages,
    mail,
  });
}

Deno.test({
  name: "fuzz: every unary RPC answers random and mutated input with a clear, harmless refusal",
  ...NO_SANITIZERS,
  fn: async () => {
    const platform = await startPlatform(["auth", "messaging"], {
      env: { REGISTRATION_BURST: "1000", PREKEY_FETCH_BURST: "1000", LOG_LEVEL: "error" },
    });
    const c = clients(platform.address);
    const raw = rawWebClient(platform.address);
    try {
      const me = await register(c);
      const other = await register(c);
      await publishKeys(c, me, { oneTime: 5, kem: 2 });
      await publishKeys(c, other, { oneTime: 5, kem: 2 });
      const ids = [me.accountId, me.deviceId, other.accountId, other.deviceId];
      let calls = 0;
      for (const [serviceName, service] of Object.entries(SERVICES)) {
        for (const [name, method] of Object.entries(service as Record<string, Method>)) {
          if (method.requestStream || method.responseStream) continue;
          const sample = method.requestDeserialize(Buffer.alloc(0)) as object;
          const request = fc.oneof(
            // Values the client encoder itself refuses (a negative uint32) are left out.
            shapeLike(sample, ids).map(encodable(method)).filter((v) => v !== undefined).map((
              body,
            ) => ({ body: body!, kind: "mutated fields" })),
            fc.uint8Array({ maxLength: 512 }).map((body) => ({ body, kind: "raw bytes" })),
          );
          const token = SELF_ENDING.has(name)
            ? fc.constantFrom(undefined, "forged.token.value", "x".repeat(5_000))
            : fc.constantFrom(me.accessToken, me.accessToken, undefined, "forged.token.value");
          await fc.assert(
            fc.asyncProperty(request, token, async ({ body, kind }, bearer) => {
              calls++;
              const before = await snapshot(platform, me);
              const outcome = await call(raw, method, body, bearer);
              const where = `${serviceName}.${name} (${kind}): ${JSON.stringify(outcome)}`;
              assert(
                ![grpc.status.INTERNAL, grpc.status.UNKNOWN, grpc.status.DATA_LOSS].includes(
                  outcome.code,
                ),
                where,
              );
              if (outcome.code !== grpc.status.OK) {
                assert(outcome.reason !== undefined, `no reason: ${where}`);
                assert(outcome.details.length >= 8, `no message naming the rule: ${where}`);
                if (outcome.code === grpc.status.INVALID_ARGUMENT) {
                  // A refusal for bad input changes nothing the caller owns.
                  assert(before === await snapshot(platform, me), `state changed: ${where}`);
                }
              }
            }),
            { numRuns: RUNS_PER_METHOD, seed: Number(Deno.env.get("FUZZ_SEED") ?? "20261204") },
          );
        }
      }
      assert(calls > 500, `only ${calls} calls`);
      // Still serving: the caller's own token works.
      const listed = await new Promise<number>((resolve, reject) =>
        c.auth.listDevices(
          {},
          bearerMetadata(me.accessToken),
          (error, response) => error ? reject(error) : resolve(response.devices.length),
        )
      );
      assert(listed >= 1);
    } finally {
      raw.close();
      c.close();
      await platform.stop();
    }
  },
});

function bearerMetadata(token: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

Deno.test({
  name: "fuzz: a malformed message on a request stream ends it with INVALID_ARGUMENT",
  ...NO_SANITIZERS,
  fn: async () => {
    const platform = await startPlatform(["auth", "messaging"], {
      env: { REGISTRATION_BURST: "1000", LOG_LEVEL: "error" },
    });
    const c = clients(platform.address);
    const raw = rawWebClient(platform.address);
    try {
      const me = await register(c);
      for (const method of [MessagingServiceService.sendStream, MessagingServiceService.receive]) {
        const status = await new Promise<grpc.StatusObject>((resolve) => {
          const stream = raw.makeBidiStreamRequest(
            method.path,
            (bytes: Uint8Array) => Buffer.from(bytes),
            (bytes: Buffer) => bytes,
            bearerMetadata(me.accessToken),
          );
          stream.on("data", () => {});
          stream.on("error", () => {});
          stream.on("status", resolve);
          stream.write(new Uint8Array([0xff, 0xff, 0xff]));
        });
        assert(
          status.code === grpc.status.INVALID_ARGUMENT,
          `${method.path}: ${status.code} ${status.details}`,
        );
      }
    } finally {
      raw.close();
      c.close();
      await platform.stop();
    }
  },
});
