/**
 * A real Web Push service for tests: web-push-testing behind TLS on loopback, signed by a test
 * CA the dispatcher is told to trust (PUSH_CA_FILE). Subscribing gives what a browser's
 * PushManager.subscribe() would; notifications() lists the payloads it decrypted.
 */

import { toBase64Url } from "../../services/platform/base64url.ts";
import { makeTestCertificates } from "./test_ca.ts";

export interface PushSubscriptionJson {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export interface WebPushService {
  caFile: string;
  /** A subscription for the server's VAPID key, and the handle to read what it received. */
  subscribe(vapidPublicKey: Uint8Array): Promise<{
    subscription: PushSubscriptionJson;
    clientHash: string;
  }>;
  /** The decrypted payloads the push service accepted for this subscription, in order. */
  notifications(clientHash: string): Promise<string[]>;
  /** From now on the service answers 410 Gone for this subscription. */
  expire(clientHash: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startWebPushService(): Promise<WebPushService> {
  const certs = await makeTestCertificates("guardyn-webpush-");
  const main = new URL("./web_push_service_main.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      `--allow-read`,
      "--allow-env",
      "--allow-sys",
      main,
      certs.certFile,
      certs.keyFile,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let first = "";
  // One deadline for the whole start, cleared once the port line is in.
  let timer: number | undefined;
  const deadline = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, 30_000);
  });
  try {
    while (!first.includes("\n")) {
      const next = await Promise.race([reader.read(), deadline]);
      if (!next || next.done) {
        child.kill("SIGKILL");
        const stderr = await new Response(child.stderr).text();
        throw new Error(`web-push-testing did not start:\n${stderr.slice(-2000)}`);
      }
      first += next.value;
    }
  } finally {
    clearTimeout(timer);
  }
  // Keep draining so the child never blocks on a full pipe.
  const draining = (async () => {
    while (!(await reader.read()).done) { /* its request log is not needed */ }
  })();
  const stderrDrain = child.stderr.pipeTo(new WritableStream());
  const base = `https://127.0.0.1:${Number.parseInt(first, 10)}`;
  const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(certs.caFile)] });
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${base}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      client,
    } as RequestInit);
    const text = await response.text();
    if (!response.ok) throw new Error(`web-push-testing ${path}: ${response.status} ${text}`);
    // Some answers are a bare "OK".
    return text.startsWith("{") ? JSON.parse(text) : undefined;
  };
  return {
    caFile: certs.caFile,
    async subscribe(vapidPublicKey) {
      const { data } = await post("/subscribe", {
        userVisibleOnly: "true",
        applicationServerKey: toBase64Url(vapidPublicKey),
      });
      return {
        subscription: { endpoint: data.endpoint, keys: data.keys },
        clientHash: data.clientHash,
      };
    },
    async notifications(clientHash) {
      const { data } = await post("/get-notifications", { clientHash });
      return data.messages;
    },
    async expire(clientHash) {
      await post(`/expire-subscription/${clientHash}`, {});
    },
    async stop() {
      client.close();
      child.kill("SIGTERM");
      await child.status;
      await Promise.allSettled([draining, stderrDrain]);
      await Deno.remove(certs.dir, { recursive: true });
    },
  };
}
