import { assert, assertEquals, assertThrows, captureError } from "../../tests/assert.ts";
import { ConfigError } from "../platform/env.ts";
import { describeConfig, parseConfig } from "./config.ts";

Deno.test("config: defaults give the embedded single-machine setup", () => {
  const config = parseConfig({});
  assertEquals(config.domain, "localhost");
  assertEquals(config.hosts, { api: "api.localhost", turn: "turn.localhost" });
  assertEquals(config.store, { backend: "sqlite", path: "./.guardyn/guardyn.db" });
  assertEquals(config.bus, { backend: "memory" });
  assertEquals(config.grpc.port, 50051);
});

Deno.test("config: DOMAIN is the single source of public host names", () => {
  const config = parseConfig({ DOMAIN: "Chat.Example.ORG" });
  assertEquals(config.domain, "chat.example.org");
  assertEquals(config.hosts.api, "api.chat.example.org");
  assertEquals(config.hosts.turn, "turn.chat.example.org");
});

Deno.test("config: cluster backends are parsed and described without credentials", () => {
  const config = parseConfig({
    STORE_BACKEND: "cql",
    CQL_CONTACT_POINTS: "10.0.0.1:9042, scylla-1.scylla:9042",
    CQL_KEYSPACE: "guardyn_prod",
    CQL_USERNAME: "guardyn",
    CQL_PASSWORD: "s3cret-value",
    BUS_BACKEND: "nats",
    NATS_URL: "nats://nats:4222",
    NATS_TOKEN: "nats-secret-value",
    MEDIA_BACKEND: "s3",
    S3_ENDPOINT: "https://s3.example.org",
    S3_BUCKET: "guardyn-media",
    S3_ACCESS_KEY_ID: "media-key",
    S3_SECRET_ACCESS_KEY: "media-secret-value",
    NATS_REPLICAS: "3",
    TOKEN_KEYS_FILE: "/run/secrets/guardyn/token-keys.json",
  });
  assert(config.store.backend === "cql");
  assertEquals(config.store.contactPoints, ["10.0.0.1:9042", "scylla-1.scylla:9042"]);
  assert(config.bus.backend === "nats");
  assertEquals(config.bus.replicas, 3);
  const described = JSON.stringify(describeConfig(config));
  assert(!described.includes("s3cret-value") && !described.includes("nats-secret-value"));
  assert(!described.includes("media-secret-value") && !described.includes("media-key"));
  assert(described.includes("https://s3.example.org/guardyn-media"), described);
});

Deno.test("config: every invalid value is reported at once, clearly", () => {
  const error = captureError(() =>
    parseConfig({
      DOMAIN: "not a domain",
      GRPC_PORT: "70000",
      METRICS_PORT: "abc",
      LOG_LEVEL: "chatty",
      STORE_BACKEND: "cql",
      CQL_KEYSPACE: "Bad-Name",
      CQL_USERNAME: "only-user",
      BUS_BACKEND: "nats",
      NATS_URL: "http://nats:4222",
    })
  );
  assert(error instanceof ConfigError);
  const text = error.message;
  for (
    const expected of [
      "DOMAIN=",
      'GRPC_PORT="70000" must be an integer in [0, 65535]',
      'METRICS_PORT="abc"',
      'LOG_LEVEL="chatty" must be one of: debug, info, warn, error',
      "CQL_CONTACT_POINTS is required when STORE_BACKEND=cql",
      'CQL_KEYSPACE="Bad-Name"',
      "CQL_USERNAME and CQL_PASSWORD must be set together",
      'NATS_URL entry "http://nats:4222" must be nats://host:port',
      "MEDIA_DIR is required with MEDIA_BACKEND=fs and STORE_BACKEND=cql",
    ]
  ) assert(text.includes(expected), `missing ${expected} in:\n${text}`);
  assertEquals(error.problems.length, 10);
});

Deno.test("config: unknown backends are refused instead of defaulted", () => {
  assertThrows(() => parseConfig({ STORE_BACKEND: "postgres" }), ConfigError);
  assertThrows(() => parseConfig({ BUS_BACKEND: "kafka" }), ConfigError);
  assertThrows(() => parseConfig({ BUS_BACKEND: "nats" }), ConfigError);
});

Deno.test("bus namespace settings: optional and validated", () => {
  const env = { BUS_BACKEND: "nats", NATS_URL: "nats://127.0.0.1:4222" };
  const plain = parseConfig(env).bus;
  assert(plain.backend === "nats" && plain.stream === undefined);
  const named = parseConfig({ ...env, NATS_STREAM: "T_1", NATS_SUBJECT_PREFIX: "t.one.events" });
  assert(named.bus.backend === "nats");
  assertEquals([named.bus.stream, named.bus.subjectPrefix], ["T_1", "t.one.events"]);
  try {
    parseConfig({ ...env, NATS_STREAM: "a.b", NATS_SUBJECT_PREFIX: "x.*" });
    throw new Error("expected a ConfigError");
  } catch (error) {
    assert(error instanceof ConfigError, String(error));
    assert(error.message.includes("NATS_STREAM") && error.message.includes("NATS_SUBJECT_PREFIX"));
  }
});

Deno.test("config: the listeners: defaults, choices and every problem at once", () => {
  const config = parseConfig({});
  assertEquals(config.http, { host: "127.0.0.1", port: 8080, corsOrigins: [] });
  assertEquals([config.grpc.listener, config.grpc.workers], ["workers", 2]);
  const tls = parseConfig({
    HTTP_TLS_CERT_FILE: "/run/tls/cert.pem",
    HTTP_TLS_KEY_FILE: "/run/tls/key.pem",
    GRPC_LISTENER: "off",
  });
  assertEquals(tls.http.tls, { certFile: "/run/tls/cert.pem", keyFile: "/run/tls/key.pem" });
  assertEquals(tls.grpc.listener, "off");
  const error = captureError(() =>
    parseConfig({
      HTTP_PORT: "70000",
      HTTP_TLS_CERT_FILE: "/run/tls/cert.pem",
      GRPC_LISTENER: "threads",
      GRPC_WORKERS: "0",
      HTTP_CORS_ORIGINS: "app.example.org",
    })
  );
  assert(error instanceof ConfigError);
  for (
    const name of [
      "HTTP_PORT",
      "HTTP_TLS_KEY_FILE",
      "GRPC_LISTENER",
      "GRPC_WORKERS",
      "HTTP_CORS_ORIGINS",
    ]
  ) {
    assert(error.message.includes(name), `${name} in ${error.message}`);
  }
});
