import { assertEquals } from "../../tests/assert.ts";
import { corsOriginProblems, CorsPolicy } from "./cors.ts";

Deno.test("cors: only configured origins get headers; preflights name method and headers", () => {
  const none = new CorsPolicy([]);
  assertEquals(none.allowed("https://app.example.org"), undefined);
  assertEquals(none.preflight("https://app.example.org").status, 403);

  const policy = new CorsPolicy(["https://app.example.org"]);
  assertEquals(policy.allowed("https://app.example.org"), "https://app.example.org");
  assertEquals(policy.allowed("https://evil.example"), undefined);
  assertEquals(policy.allowed(null), undefined);
  const preflight = policy.preflight("https://app.example.org");
  assertEquals(preflight.status, 204);
  assertEquals(preflight.headers.get("access-control-allow-methods"), "POST");
  assertEquals(
    preflight.headers.get("access-control-allow-headers")?.includes("authorization"),
    true,
  );
  const answered = policy.decorate(new Response("x"), "https://app.example.org");
  assertEquals(answered.headers.get("access-control-allow-origin"), "https://app.example.org");
  assertEquals(
    answered.headers.get("access-control-expose-headers")?.includes("guardyn-error-reason"),
    true,
  );
  const foreign = policy.decorate(new Response("x"), "https://evil.example");
  assertEquals(foreign.headers.get("access-control-allow-origin"), null);
  assertEquals(new CorsPolicy(["*"]).allowed("https://any.example"), "*");
});

Deno.test("cors: HTTP_CORS_ORIGINS entries must be bare origins", () => {
  assertEquals(corsOriginProblems(["*", "https://app.example.org", "http://localhost:5173"]), []);
  assertEquals(
    corsOriginProblems(["https://app.example.org/path", "app.example.org", "ftp://x.example"])
      .length,
    3,
  );
});
