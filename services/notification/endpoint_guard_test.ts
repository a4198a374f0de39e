import { assertEquals } from "../../tests/assert.ts";
import { endpointRefusal } from "./endpoint_guard.ts";
import { outcomeOfStatus } from "./wake.ts";

const dns = (answers: Record<string, string[]>) => (host: string) =>
  Promise.resolve(answers[host] ?? []);

Deno.test("endpoint guard: only public unicast hosts over https", async () => {
  const resolve = dns({
    "push.example.org": ["93.184.216.34"],
    "inside.example.org": ["10.1.2.3"],
    "mixed.example.org": ["93.184.216.34", "127.0.0.1"],
  });
  const refusal = (url: string) => endpointRefusal(url, resolve, false);
  assertEquals(await refusal("https://push.example.org/sub/1"), undefined);
  assertEquals(await refusal("http://push.example.org/sub/1"), "not https");
  assertEquals(
    await refusal("https://inside.example.org/x"),
    "the host resolves to a private address",
  );
  assertEquals(
    await refusal("https://mixed.example.org/x"),
    "the host resolves to a loopback address",
  );
  assertEquals(
    await refusal("https://169.254.169.254/latest"),
    "the host resolves to a linkLocal address",
  );
  assertEquals(await refusal("https://[::1]/x"), "the host resolves to a loopback address");
  assertEquals(await refusal("https://nowhere.example.org/x"), "the host does not resolve");
  assertEquals(await endpointRefusal("https://127.0.0.1:8443/x", resolve, true), undefined);
});

Deno.test("push outcomes: 2xx accepted, 404/410 gone, 429/5xx retried, other 4xx refused", () => {
  assertEquals(outcomeOfStatus(201).kind, "accepted");
  assertEquals(outcomeOfStatus(404).kind, "gone");
  assertEquals(outcomeOfStatus(410).kind, "gone");
  assertEquals(outcomeOfStatus(429).kind, "retry");
  assertEquals(outcomeOfStatus(503).kind, "retry");
  assertEquals(outcomeOfStatus(400).kind, "refused");
  assertEquals(outcomeOfStatus(413).kind, "refused");
});
