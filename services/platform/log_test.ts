import { assert, assertEquals } from "../../tests/assert.ts";
import { memoryLogger, redact } from "./log.ts";

Deno.test("log: one JSON object per line with level, message and context fields", () => {
  const log = memoryLogger("info");
  const child = log.child({ requestId: "r-1", service: "auth" });
  child.info("device created", { deviceId: "d1" });
  child.debug("hidden below the level");
  assertEquals(log.lines.length, 1);
  const line = log.lines[0]!;
  assertEquals(line.level, "info");
  assertEquals(line.msg, "device created");
  assertEquals(line.requestId, "r-1");
  assertEquals(line.deviceId, "d1");
  assert(typeof line.ts === "string");
});

Deno.test("log: secret-looking fields and raw bytes never reach a log line", () => {
  const fields = redact({
    password: "hunter2",
    refreshToken: "abc",
    authorization: "Bearer x",
    privateKey: "k",
    content: "ciphertext",
    blob: new Uint8Array(32),
    error: new Error("boom"),
    accountId: "a1",
  });
  assertEquals(fields.password, "[redacted]");
  assertEquals(fields.refreshToken, "[redacted]");
  assertEquals(fields.authorization, "[redacted]");
  assertEquals(fields.privateKey, "[redacted]");
  assertEquals(fields.content, "[redacted]");
  assertEquals(fields.blob, "[32 bytes]");
  assertEquals(fields.error, { name: "Error", message: "boom" });
  assertEquals(fields.accountId, "a1");
});
