/**
 * Runs `web-push-testing` (an RFC 8030 push service that checks the VAPID JWT and decrypts
 * aes128gcm) over HTTPS on 127.0.0.1 only: its own CLI listens on every interface and over
 * plain HTTP, which real senders refuse. Usage: web_push_service_main.ts CERT KEY; prints the
 * port on its first stdout line.
 */

import https from "node:https";
import type { AddressInfo } from "node:net";
import TestingServer from "web-push-testing/src/server.js";
import { PushApiModel } from "web-push-testing/src/PushApiModel.js";

const [certFile, keyFile] = Deno.args;
if (!certFile || !keyFile) throw new Error("usage: web_push_service_main.ts CERT KEY");
const model = new PushApiModel();
const server = new TestingServer(model, 0);
server.setRequestHandlers();
const listener = https.createServer(
  { cert: Deno.readTextFileSync(certFile), key: Deno.readTextFileSync(keyFile) },
  server._app,
);
listener.listen(0, "127.0.0.1", () => {
  const { port } = listener.address() as AddressInfo;
  // Subscriptions name their endpoint from this; the package would say http://localhost.
  model.notifyUrl = `https://127.0.0.1:${port}/notify/`;
  console.log(port);
});
