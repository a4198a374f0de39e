/**
 * APNs and FCM senders against local HTTP/2 endpoints over TLS (a test CA; the client speaks
 * HTTP/2 only). These are request-shape checks (method, path, headers, JWT, body), not the
 * vendors' services, which cannot be reached from here: what Apple and Google answer is
 * modelled on their documented statuses and reasons.
 */

import * as jose from "jose";
import { assert, assertEquals } from "../../tests/assert.ts";
import { makeTestCertificates } from "../../tests/support/test_ca.ts";
import { NO_SANITIZERS } from "../../tests/support/wait.ts";
import { APNS_WAKE_PAYLOAD, apnsSender } from "./apns.ts";
import { fcmSender } from "./fcm.ts";

interface Seen {
  method: string;
  path: string;
  headers: Headers;
  body: string;
}

/** An HTTPS (h2) server answering with `answer`, recording every request. */
async function endpoint(answer: (seen: Seen) => Response) {
  const certs = await makeTestCertificates("guardyn-vendor-");
  const seen: Seen[] = [];
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: await Deno.readTextFile(certs.certFile),
    key: await Deno.readTextFile(certs.keyFile),
    onListen: () => {},
  }, async (request) => {
    const url = new URL(request.url);
    const one = {
      method: request.method,
      path: url.pathname,
      headers: new Headers(request.headers),
      body: await request.text(),
    };
    seen.push(one);
    return answer(one);
  });
  const client = Deno.createHttpClient({
    caCerts: [await Deno.readTextFile(certs.caFile)],
    http1: false,
    http2: true,
  });
  return {
    url: `https://127.0.0.1:${server.addr.port}`,
    seen,
    fetch:
      ((input: string | URL | Request, init?: RequestInit) =>
        fetch(input, { ...init, client } as RequestInit)) as typeof fetch,
    async stop() {
      client.close();
      await server.shutdown();
      await Deno.remove(certs.dir, { recursive: true });
    },
  };
}

Deno.test({
  name: "APNs sender (request shape): ES256 bearer, topic, alert without content, dead tokens",
  ...NO_SANITIZERS,
  fn: async () => {
    const { privateKey, publicKey } = await jose.generateKeyPair("ES256", { extractable: true });
    const answers = [
      new Response(null, { status: 200 }),
      Response.json({ reason: "Unregistered" }, { status: 410 }),
      Response.json({ reason: "BadDeviceToken" }, { status: 400 }),
      Response.json({ reason: "TooManyRequests" }, { status: 429 }),
      Response.json({ reason: "BadTopic" }, { status: 400 }),
    ];
    const server = await endpoint(() => answers.shift()!);
    try {
      const now = 1_800_000_000_000;
      const sender = await apnsSender({
        privateKeyPem: await jose.exportPKCS8(privateKey),
        keyId: "ABC123DEFG",
        teamId: "TEAM123456",
        topic: "org.example.guardyn",
        url: server.url,
        timeoutMs: 5_000,
        now: () => now,
        fetch: server.fetch,
      });
      const token = "ab".repeat(32);
      assertEquals(await sender.send(token, { urgent: false }), { kind: "accepted" });
      const [first] = server.seen;
      assertEquals([first!.method, first!.path], ["POST", `/3/device/${token}`]);
      const h = first!.headers;
      assertEquals(
        [h.get("apns-topic"), h.get("apns-push-type"), h.get("apns-priority")],
        ["org.example.guardyn", "alert", "10"],
      );
      assertEquals(h.get("apns-expiration"), String(now / 1000 + 86_400));
      assertEquals(h.get("apns-collapse-id"), "guardyn-wake");
      const jwt = h.get("authorization")!.replace(/^bearer /, "");
      const verified = await jose.jwtVerify(jwt, publicKey, { issuer: "TEAM123456" });
      assertEquals(verified.protectedHeader, { alg: "ES256", kid: "ABC123DEFG" });
      assertEquals(verified.payload.iat, now / 1000);
      assertEquals(JSON.parse(first!.body), APNS_WAKE_PAYLOAD);

      assertEquals(await sender.send(token, { urgent: true }), { kind: "gone", status: 410 });
      assertEquals(server.seen[1]!.headers.get("apns-expiration"), String(now / 1000 + 60));
      assertEquals(
        server.seen[1]!.headers.get("authorization"),
        h.get("authorization"),
        "the JWT is reused",
      );
      assertEquals(await sender.send(token, { urgent: false }), { kind: "gone", status: 400 });
      assertEquals((await sender.send(token, { urgent: false })).kind, "retry");
      assertEquals((await sender.send(token, { urgent: false })).kind, "refused");
    } finally {
      await server.stop();
    }
  },
});

Deno.test({
  name: "FCM sender (request shape): OAuth assertion, data-only high priority, UNREGISTERED",
  ...NO_SANITIZERS,
  fn: async () => {
    const { privateKey, publicKey } = await jose.generateKeyPair("RS256", { extractable: true });
    let sends = 0;
    const server = await endpoint((seen) => {
      if (seen.path === "/token") {
        return Response.json({ access_token: "ya29.test-access", expires_in: 3600 });
      }
      sends++;
      if (sends === 1) return Response.json({ name: "projects/p/messages/1" });
      if (sends === 2) {
        return Response.json({
          error: {
            status: "NOT_FOUND",
            details: [{ errorCode: "UNREGISTERED" }],
          },
        }, { status: 404 });
      }
      return Response.json({ error: { status: "UNAVAILABLE" } }, { status: 503 });
    });
    try {
      const account = {
        project_id: "guardyn-test",
        client_email: "push@guardyn-test.iam.gserviceaccount.com",
        private_key: await jose.exportPKCS8(privateKey),
        token_uri: `${server.url}/token`,
      };
      const sender = await fcmSender({
        account,
        url: server.url,
        timeoutMs: 5_000,
        fetch: server.fetch,
      });
      assertEquals(await sender.send("fcm-token:1", { urgent: false }), { kind: "accepted" });
      const [tokenRequest, send] = server.seen;
      const form = new URLSearchParams(tokenRequest!.body);
      assertEquals(form.get("grant_type"), "urn:ietf:params:oauth:grant-type:jwt-bearer");
      const assertion = await jose.jwtVerify(form.get("assertion")!, publicKey, {
        issuer: account.client_email,
        audience: account.token_uri,
      });
      assertEquals(assertion.payload.scope, "https://www.googleapis.com/auth/firebase.messaging");
      assertEquals(
        [send!.method, send!.path],
        ["POST", "/v1/projects/guardyn-test/messages:send"],
      );
      assertEquals(send!.headers.get("authorization"), "Bearer ya29.test-access");
      assertEquals(JSON.parse(send!.body), {
        message: {
          token: "fcm-token:1",
          data: { v: "1", type: "wake" },
          android: { priority: "HIGH", ttl: "86400s", collapse_key: "guardyn-wake" },
        },
      });
      assertEquals(await sender.send("fcm-token:1", { urgent: true }), {
        kind: "gone",
        status: 404,
      });
      assertEquals(server.seen.filter((s) => s.path === "/token").length, 1, "token reused");
      assert(JSON.parse(server.seen.at(-1)!.body).message.android.ttl === "60s");
      assertEquals((await sender.send("fcm-token:1", { urgent: false })).kind, "retry");
    } finally {
      await server.stop();
    }
  },
});
