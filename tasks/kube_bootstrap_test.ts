import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { importTokenKeys, type TokenKeyFile } from "../services/platform/tokens.ts";
import {
  CQL_APP_USER,
  generateSecrets,
  parseSecretNames,
  randomSecret,
  secretsToCreate,
} from "./kube_bootstrap.ts";
import { SECRET_KEYS, TOKEN_KEYS_FILE_NAME } from "./kube_manifests.ts";
import { ROOT } from "./kube_test_kit.ts";

Deno.test("bootstrap: generates exactly the Secrets and keys the manifests reference", async () => {
  const secrets = await generateSecrets("guardyn");
  assertEquals(
    Object.fromEntries(secrets.map((s) => [s.metadata.name, Object.keys(s.stringData)])),
    SECRET_KEYS,
  );
  for (const secret of secrets) {
    assertEquals(secret.metadata.namespace, "guardyn");
    assertEquals(secret.kind, "Secret");
  }
});

Deno.test("bootstrap: the token key set is one the services load", async () => {
  const [tokenKeys] = await generateSecrets("guardyn");
  const file = JSON.parse(tokenKeys!.stringData[TOKEN_KEYS_FILE_NAME]!) as TokenKeyFile;
  const keys = await importTokenKeys(file);
  assertEquals(keys.activeKid, file.active);
  assertEquals(keys.verifying.size, 1);
});

Deno.test("bootstrap: passwords and tokens are fresh and pass the scylla-auth script's rules", async () => {
  const script = await Deno.readTextFile(`${ROOT}/infra/k8s/base/scylla-auth.sh`);
  assert(script.includes("^[A-Za-z0-9_-]{16,128}$"), "scylla-auth.sh password rule changed");
  assert(script.includes("^[a-z][a-z0-9_]{0,47}$"), "scylla-auth.sh username rule changed");
  assert(/^[a-z][a-z0-9_]{0,47}$/.test(CQL_APP_USER));
  const first = await generateSecrets("guardyn");
  const second = await generateSecrets("guardyn");
  for (const [index, secret] of first.entries()) {
    for (const [key, value] of Object.entries(secret.stringData)) {
      if (key === "CQL_USERNAME") continue;
      assert(value !== second[index]!.stringData[key], `${secret.metadata.name}/${key} repeated`);
      if (key === "VAPID_PRIVATE_KEY") {
        assert(/^[A-Za-z0-9_-]{43}$/.test(value), "a P-256 scalar in base64url");
      } else if (key !== TOKEN_KEYS_FILE_NAME) {
        assert(/^[A-Za-z][A-Za-z0-9]{42}$/.test(value), `${key} has an unexpected shape`);
      }
    }
  }
  const many = new Set(Array.from({ length: 200 }, () => randomSecret(16)));
  assertEquals(many.size, 200);
  assertThrows(() => randomSecret(8), /16..128/);
});

Deno.test("bootstrap: only missing Secrets are created", () => {
  const existing = parseSecretNames("secret/guardyn-cql\nsecret/other\n\n");
  assertEquals([...existing], ["guardyn-cql", "other"]);
  assertEquals(secretsToCreate(existing), [
    "guardyn-token-keys",
    "guardyn-nats",
    "guardyn-scylla-superuser",
    "guardyn-s3",
    "guardyn-turn",
    "guardyn-push",
  ]);
  assertEquals(secretsToCreate(new Set(Object.keys(SECRET_KEYS))), []);
});
