/**
 * PresenceService end to end through gRPC-Web, on the embedded store and on Cassandra +
 * JetStream with two instances (a change made on one reaches a watcher on the other). The
 * online window is 3 s here so expiry can be watched happening.
 */
import * as grpc from "@grpc/grpc-js";
import { assert, assertEquals } from "../../tests/assert.ts";
import { bearer, failure, unary } from "../../tests/support/grpc.ts";
import { type Backend, startPlatform, type TestPlatform } from "../../tests/support/platform.ts";
import { webClient } from "../../tests/support/web.ts";
import {
  type Clients,
  clients,
  register,
  type TestDevice,
} from "../../tests/support/accounts_test_kit.ts";
import { deleteStreams, NATS_URL } from "../bus/conformance/nats_server.ts";
import {
  type AccountPresence,
  PresenceLevel,
  PresenceServiceClient,
  PresenceServiceService,
  PresenceStatus,
  type WatchPresenceResponse,
} from "../../proto/gen/guardyn/v1/presence.ts";
import { newPresenceCapability, presenceGrantHash } from "../../crypto/presence_grant.ts";
import { NO_SANITIZERS, waitUntil } from "../../tests/support/wait.ts";

type Presence = InstanceType<typeof PresenceServiceClient>;

interface Setup {
  a: TestPlatform;
  b: TestPlatform;
  c: Clients;
  pA: Presence;
  pB: Presence;
  stream?: string;
}

const HIDDEN = { status: PresenceStatus.PRESENCE_STATUS_OFFLINE, customText: "", lastSeenMs: 0 };
const ONLINE = PresenceStatus.PRESENCE_STATUS_ONLINE;
const WINDOW_MS = 3_000;

/** An open WatchPresence stream and every message it got. */
function watch(
  p: Presence,
  token: string,
  targets: { accountId: string; capability?: Uint8Array }[],
) {
  const got: AccountPresence[] = [];
  let ended: grpc.ServiceError | "end" | undefined;
  const stream = p.watchPresence(
    {
      targets: targets.map((t) => ({
        accountId: t.accountId,
        capability: t.capability ?? new Uint8Array(),
      })),
    },
    bearer(token),
  );
  stream.on("data", (m: WatchPresenceResponse) => got.push(m.presence!));
  stream.on("error", (e: grpc.ServiceError) => ended = e);
  stream.on("end", () => ended ??= "end");
  return {
    got,
    ended: () => ended,
    latest: (accountId: string) => got.findLast((p) => p.accountId === accountId),
    cancel: () => stream.cancel(),
  };
}

function presenceSuite(backend: Backend) {
  let running: Promise<Setup> | undefined;
  const setup = () =>
    running ??= (async () => {
      const id = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
      const cluster = backend === "cluster";
      const env: Record<string, string> = {
        REGISTRATION_BURST: "1000",
        PRESENCE_ONLINE_WINDOW_MS: String(WINDOW_MS),
        PRESENCE_HEARTBEAT_INTERVAL_MS: "1000",
        PRESENCE_GRANTS_MAX: "5",
        ...(cluster
          ? { NATS_STREAM: `GUARDYN_P_${id}`, NATS_SUBJECT_PREFIX: `guardyn.p${id}.events` }
          : {}),
      };
      const a = await startPlatform(["auth", "presence"], { backend, env });
      const b = cluster ? await startPlatform(["presence"], { shared: a, env }) : a;
      return {
        a,
        b,
        c: clients(a.address),
        pA: webClient<Presence>(PresenceServiceService, a.address),
        pB: webClient<Presence>(PresenceServiceService, b.address),
        ...(cluster ? { stream: env.NATS_STREAM } : {}),
      };
    })();
  const test = (name: string, fn: (s: Setup) => Promise<void>) =>
    Deno.test({
      name: `presence (${backend}): ${name}`,
      ...NO_SANITIZERS,
      fn: async () => fn(await setup()),
    });

  /** The owner grants `watcher` a level; returns the capability the E2EE message would carry. */
  const grant = async (s: Setup, owner: TestDevice, watcher: TestDevice, level: PresenceLevel) => {
    const capability = newPresenceCapability();
    const grantHash = presenceGrantHash(capability, watcher.accountId);
    await unary(s.pA.grantPresence.bind(s.pA), {
      grants: [{ grantHash, level, createdAtMs: 0 }],
    }, owner.accessToken);
    return { capability, grantHash };
  };
  const read = async (
    p: Presence,
    reader: TestDevice,
    accountId: string,
    capability: Uint8Array = new Uint8Array(),
  ) =>
    (await unary(
      p.getPresence.bind(p),
      { targets: [{ accountId, capability }] },
      reader.accessToken,
    ))
      .presences[0]!;

  test("owner: status, text and INVISIBLE; heartbeat answers the interval", async (s) => {
    const alice = await register(s.c);
    const beat = await unary(s.pA.heartbeat.bind(s.pA), {}, alice.accessToken);
    assertEquals([beat.intervalMs, beat.onlineWindowMs], [1000, WINDOW_MS]);
    await unary(s.pA.setPresence.bind(s.pA), {
      status: PresenceStatus.PRESENCE_STATUS_BUSY,
      customText: "in a meeting",
    }, alice.accessToken);
    const own = await read(s.pB, alice, alice.accountId);
    assertEquals(own, {
      accountId: alice.accountId,
      status: PresenceStatus.PRESENCE_STATUS_BUSY,
      customText: "in a meeting",
      lastSeenMs: 0,
    });
    await unary(s.pA.setPresence.bind(s.pA), {
      status: PresenceStatus.PRESENCE_STATUS_INVISIBLE,
      customText: "",
    }, alice.accessToken);
    assertEquals(
      (await read(s.pB, alice, alice.accountId)).status,
      PresenceStatus.PRESENCE_STATUS_INVISIBLE,
    );
  });

  test("privacy: no grant, a forwarded capability and an unknown account look the same", async (s) => {
    const [alice, bob, carol] = [await register(s.c), await register(s.c), await register(s.c)];
    await unary(s.pA.heartbeat.bind(s.pA), {}, alice.accessToken);
    await unary(
      s.pA.setPresence.bind(s.pA),
      { status: ONLINE, customText: "hi" },
      alice.accessToken,
    );
    const unknown = `acct-${crypto.randomUUID()}`;
    assertEquals(await read(s.pA, bob, alice.accountId), {
      accountId: alice.accountId,
      ...HIDDEN,
    });
    assertEquals(await read(s.pA, bob, unknown), { accountId: unknown, ...HIDDEN });
    const { capability, grantHash } = await grant(
      s,
      alice,
      bob,
      PresenceLevel.PRESENCE_LEVEL_ONLINE,
    );
    assertEquals(await read(s.pB, bob, alice.accountId, capability), {
      accountId: alice.accountId,
      status: ONLINE,
      customText: "hi",
      lastSeenMs: 0,
    });
    // Bob forwards his capability to Carol: it is bound to Bob's account.
    assertEquals(await read(s.pB, carol, alice.accountId, capability), {
      accountId: alice.accountId,
      ...HIDDEN,
    });
    // A random capability is no better than none.
    assertEquals(await read(s.pB, carol, alice.accountId, newPresenceCapability()), {
      accountId: alice.accountId,
      ...HIDDEN,
    });
    // INVISIBLE hides Alice from her grant holders too.
    await unary(s.pA.setPresence.bind(s.pA), {
      status: PresenceStatus.PRESENCE_STATUS_INVISIBLE,
      customText: "",
    }, alice.accessToken);
    assertEquals(await read(s.pB, bob, alice.accountId, capability), {
      accountId: alice.accountId,
      ...HIDDEN,
    });
    await unary(s.pA.setPresence.bind(s.pA), { status: ONLINE, customText: "" }, alice.accessToken);
    const listed = await unary(s.pB.listPresenceGrants.bind(s.pB), {
      after: new Uint8Array(),
      limit: 0,
    }, alice.accessToken);
    assertEquals(listed.grants.map((g) => [[...g.grantHash], g.level]), [[
      [...grantHash],
      PresenceLevel.PRESENCE_LEVEL_ONLINE,
    ]]);
    assertEquals(listed.more, false);
    const revoked = await unary(s.pA.revokePresence.bind(s.pA), {
      grantHashes: [grantHash],
      all: false,
    }, alice.accessToken);
    assertEquals(revoked.revoked, 1);
    assertEquals(await read(s.pB, bob, alice.accountId, capability), {
      accountId: alice.accountId,
      ...HIDDEN,
    });
  });

  test("watch: changes reach a watcher on another instance; revoke hides at once", async (s) => {
    const [alice, bob] = [await register(s.c), await register(s.c)];
    const { capability, grantHash } = await grant(
      s,
      alice,
      bob,
      PresenceLevel.PRESENCE_LEVEL_ONLINE,
    );
    const w = watch(s.pB, bob.accessToken, [{ accountId: alice.accountId, capability }]);
    await waitUntil(() => w.got.length === 1, "snapshot", 10_000);
    assertEquals(w.got[0], { accountId: alice.accountId, ...HIDDEN });
    await unary(s.pA.heartbeat.bind(s.pA), {}, alice.accessToken);
    await waitUntil(
      () => w.latest(alice.accountId)?.status === ONLINE,
      "online reaches the watcher",
      10_000,
    );
    await unary(s.pA.setPresence.bind(s.pA), {
      status: PresenceStatus.PRESENCE_STATUS_AWAY,
      customText: "lunch",
    }, alice.accessToken);
    await waitUntil(
      () => w.latest(alice.accountId)?.customText === "lunch",
      "the change arrives",
      10_000,
    );
    const before = w.got.length;
    // A heartbeat of an account already online changes nothing: nothing is sent.
    await unary(s.pA.heartbeat.bind(s.pA), {}, alice.accessToken);
    await new Promise((r) => setTimeout(r, 300));
    assertEquals(w.got.length, before);
    await unary(
      s.pA.revokePresence.bind(s.pA),
      { grantHashes: [grantHash], all: false },
      alice.accessToken,
    );
    await waitUntil(
      () => w.latest(alice.accountId)?.status === PresenceStatus.PRESENCE_STATUS_OFFLINE,
      "revoked: hidden",
      10_000,
    );
    assertEquals(w.latest(alice.accountId), { accountId: alice.accountId, ...HIDDEN });
    w.cancel();
  });

  test("expiry: the server turns a silent account OFFLINE; last seen per level", async (s) => {
    const [alice, bob, dave] = [await register(s.c), await register(s.c), await register(s.c)];
    const online = await grant(s, alice, bob, PresenceLevel.PRESENCE_LEVEL_ONLINE);
    const lastSeen = await grant(s, alice, dave, PresenceLevel.PRESENCE_LEVEL_LAST_SEEN);
    const wBob = watch(s.pB, bob.accessToken, [{
      accountId: alice.accountId,
      capability: online.capability,
    }]);
    const wDave = watch(s.pA, dave.accessToken, [{
      accountId: alice.accountId,
      capability: lastSeen.capability,
    }]);
    await waitUntil(() => wBob.got.length === 1 && wDave.got.length === 1, "snapshots", 10_000);
    const beatAt = Date.now();
    await unary(s.pA.heartbeat.bind(s.pA), {}, alice.accessToken);
    await waitUntil(() => wDave.latest(alice.accountId)?.status === ONLINE, "online", 10_000);
    // No more heartbeats: after the window the server itself announces OFFLINE.
    await waitUntil(
      () => wDave.latest(alice.accountId)?.status === PresenceStatus.PRESENCE_STATUS_OFFLINE,
      "expired",
      15_000,
    );
    await waitUntil(
      () => wBob.latest(alice.accountId)?.status === PresenceStatus.PRESENCE_STATUS_OFFLINE,
      "expired (bob)",
      15_000,
    );
    assert(Date.now() - beatAt >= WINDOW_MS - 100, "not before the window ran out");
    const seen = wDave.latest(alice.accountId)!.lastSeenMs;
    assertEquals(seen % 60_000, 0, "rounded down to the minute");
    assert(seen <= beatAt && beatAt - seen < 60_000);
    assertEquals(wBob.latest(alice.accountId)!.lastSeenMs, 0, "an ONLINE grant shows no last seen");
    assertEquals(
      (await read(s.pA, dave, alice.accountId, lastSeen.capability)).lastSeenMs,
      seen,
    );
    wBob.cancel();
    wDave.cancel();
  });

  test("bad input and limits get clear errors", async (s) => {
    const alice = await register(s.c);
    const invalid = async (call: Promise<unknown>, text: string) => {
      const f = await failure(call);
      assertEquals(f.code, grpc.status.INVALID_ARGUMENT, f.details);
      assert(f.details.includes(text), f.details);
    };
    await invalid(
      unary(s.pA.setPresence.bind(s.pA), { status: 0, customText: "" }, alice.accessToken),
      "status",
    );
    await invalid(
      unary(
        s.pA.setPresence.bind(s.pA),
        { status: ONLINE, customText: "x".repeat(141) },
        alice.accessToken,
      ),
      "140",
    );
    await invalid(unary(s.pA.getPresence.bind(s.pA), { targets: [] }, alice.accessToken), "1..100");
    const many = Array.from(
      { length: 101 },
      (_, i) => ({ accountId: `a${i}`, capability: new Uint8Array() }),
    );
    await invalid(
      unary(s.pA.getPresence.bind(s.pA), { targets: many }, alice.accessToken),
      "1..100",
    );
    await invalid(
      unary(s.pA.getPresence.bind(s.pA), {
        targets: [{ accountId: "x", capability: new Uint8Array(5) }],
      }, alice.accessToken),
      "32 bytes",
    );
    await invalid(
      unary(s.pA.grantPresence.bind(s.pA), {
        grants: [{ grantHash: new Uint8Array(3), level: 1, createdAtMs: 0 }],
      }, alice.accessToken),
      "32 bytes",
    );
    await invalid(
      unary(s.pA.grantPresence.bind(s.pA), {
        grants: [{ grantHash: new Uint8Array(32), level: 0, createdAtMs: 0 }],
      }, alice.accessToken),
      "level",
    );
    // PRESENCE_GRANTS_MAX is 5 here.
    const hashes = Array.from({ length: 5 }, () => crypto.getRandomValues(new Uint8Array(32)));
    await unary(s.pA.grantPresence.bind(s.pA), {
      grants: hashes.map((grantHash) => ({ grantHash, level: 1, createdAtMs: 0 })),
    }, alice.accessToken);
    const full = await failure(
      unary(s.pA.grantPresence.bind(s.pA), {
        grants: [{ grantHash: new Uint8Array(32).fill(7), level: 1, createdAtMs: 0 }],
      }, alice.accessToken),
    );
    assertEquals(full.code, grpc.status.RESOURCE_EXHAUSTED, full.details);
    assert(full.details.includes("at most 5"), full.details);
    const page = await unary(s.pA.listPresenceGrants.bind(s.pA), {
      after: new Uint8Array(),
      limit: 2,
    }, alice.accessToken);
    assertEquals([page.grants.length, page.more], [2, true]);
    const all = await unary(
      s.pA.revokePresence.bind(s.pA),
      { grantHashes: [], all: true },
      alice.accessToken,
    );
    assertEquals(all.revoked, 5);
    const anonymous = await failure(unary(s.pA.heartbeat.bind(s.pA), {}));
    assertEquals(anonymous.code, grpc.status.UNAUTHENTICATED);
  });

  Deno.test({
    name: `presence (${backend}): stop`,
    ...NO_SANITIZERS,
    fn: async () => {
      if (!running) return;
      const s = await running;
      s.c.close();
      s.pA.close();
      s.pB.close();
      if (s.b !== s.a) await s.b.stop();
      await s.a.stop();
      if (s.stream) await deleteStreams(NATS_URL, [s.stream]);
    },
  });
}

presenceSuite("embedded");
presenceSuite("cluster");
