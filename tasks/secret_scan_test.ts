import { assertEquals } from "../tests/assert.ts";
import { scanInfra, scanText } from "./secret_scan.ts";
import { run } from "./kube_tools.ts";
import { ROOT } from "./kube_test_kit.ts";

Deno.test("secret scan: nothing under infra/ holds an unencrypted secret value", async () => {
  // Files git ignores (a local age key, generated output) are the operator's, not the repo's.
  const ignored = new Set(
    (await run("git", ["ls-files", "--others", "--ignored", "--exclude-standard", "infra"], {
      cwd: ROOT,
    })).stdout.split("\n").filter(Boolean),
  );
  assertEquals(await scanInfra(ROOT, (path) => ignored.has(path)), []);
});

Deno.test("secret scan: plaintext Secrets and key material are found; SOPS ciphertext passes", () => {
  const plain = `apiVersion: v1
kind: Secret
metadata: { name: guardyn-nats }
stringData:
  NATS_TOKEN: hunter2
`;
  assertEquals(scanText("infra/x.yaml", plain), [
    {
      file: "infra/x.yaml",
      why: "Secret guardyn-nats has an unencrypted value in stringData.NATS_TOKEN",
    },
  ]);
  const list = JSON.stringify({
    kind: "List",
    items: [{ kind: "Secret", metadata: { name: "s" }, data: { k: "dg==" } }],
  });
  assertEquals(scanText("infra/x.json", list).length, 1);
  const encrypted = `apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Secret
    metadata: { name: guardyn-nats }
    stringData:
      NATS_TOKEN: ENC[AES256_GCM,data:q83v,iv:AAAA,tag:BBBB,type:str]
sops:
  version: 3.13.3
`;
  assertEquals(scanText("infra/secrets/prod.enc.yaml", encrypted), []);
  // Ciphertext-looking values in a file without sops metadata are still plaintext to git.
  assertEquals(scanText("infra/y.yaml", encrypted.replace(/sops:[\s\S]*$/, "")).length, 1);
  assertEquals(
    scanText("infra/k.txt", "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ").length,
    1,
  );
  assertEquals(scanText("infra/k.pem", "-----BEGIN EC PRIVATE KEY-----\n...").length, 1);
  assertEquals(scanText("infra/ok.yaml", "kind: ConfigMap\ndata: { DOMAIN: example.org }\n"), []);
});
