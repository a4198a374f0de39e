import { parse } from "yaml";
import { assert, assertEquals, assertMatch, assertThrows } from "../tests/assert.ts";
import {
  checkRendered,
  configFileValues,
  domainLiterals,
  find,
  kindOf,
  nameOf,
} from "./kube_checks.ts";
import { API_HOST_TEMPLATE, type Manifest } from "./kube_manifests.ts";
import { checkDomain, OVERLAYS, renderKustomization } from "./kube_render.ts";
import { run } from "./kube_tools.ts";
import {
  catalog,
  kubernetesValidate,
  kustomize,
  render,
  ROOT,
  TEST_DOMAIN,
  TEST_IMAGES,
} from "./kube_test_kit.ts";

/** The Kubernetes version of infra/k3d-config.yaml's k3s image. */
const KUBERNETES_VERSION = "1.32.0";

for (const overlay of OVERLAYS) {
  Deno.test(`kube: ${overlay} renders and passes strict schema validation`, async () => {
    const { yaml, manifests } = await render(overlay);
    assert(manifests.length > 20, `only ${manifests.length} objects rendered`);
    const file = await Deno.makeTempFile({ suffix: ".yaml" });
    try {
      await Deno.writeTextFile(file, yaml);
      const result = await run(await kubernetesValidate(), [
        "--strict",
        "--quiet",
        "-k",
        KUBERNETES_VERSION,
        file,
      ]);
      assertEquals(result.code, 0, `kubernetes-validate:\n${result.stdout}${result.stderr}`);
    } finally {
      await Deno.remove(file);
    }
  });

  Deno.test(`kube: ${overlay} passes every policy check`, async () => {
    const { manifests } = await render(overlay);
    assertEquals(checkRendered(manifests, await catalog(), overlay, TEST_DOMAIN), []);
  });
}

Deno.test("kube: schema validation rejects a misspelled field (the validator is strict)", async () => {
  const file = await Deno.makeTempFile({ suffix: ".yaml" });
  try {
    const { manifests } = await render("local");
    const deployment = structuredClone(manifests.find((m) => kindOf(m) === "Deployment")!);
    // deno-lint-ignore no-explicit-any
    (deployment as any).spec.template.spec.containers[0].readinesProbe = {};
    await Deno.writeTextFile(file, JSON.stringify(deployment));
    const result = await run(await kubernetesValidate(), [
      "--strict",
      "-k",
      KUBERNETES_VERSION,
      file,
    ]);
    assert(result.code !== 0, "a misspelled field passed validation");
    assertMatch(result.stdout + result.stderr, /readinesProbe/);
  } finally {
    await Deno.remove(file);
  }
});

/** Paths of string values containing `needle`. */
function pathsContaining(value: unknown, needle: string, path = ""): string[] {
  if (typeof value === "string") return value.includes(needle) ? [path] : [];
  if (Array.isArray(value)) {
    return value.flatMap((v, i) => pathsContaining(v, needle, `${path}[${i}]`));
  }
  if (value && typeof value === "object") {
    return Object.entries(value).flatMap(([k, v]) => pathsContaining(v, needle, `${path}.${k}`));
  }
  return [];
}

Deno.test("kube: the domain enters in one place and lands only in config and ingress hosts", async () => {
  const places = async (overlay: "local" | "prod", domain: string) =>
    (await render(overlay, domain)).manifests.flatMap((m: Manifest) =>
      pathsContaining(m, domain).map((p) => `${kindOf(m)}${p}`)
    );
  assertEquals(await places("local", TEST_DOMAIN), [
    "ConfigMap.data.DOMAIN",
    "Ingress.spec.rules[0].host",
  ]);
  assertEquals(await places("prod", TEST_DOMAIN), [
    "ConfigMap.data.DOMAIN",
    "Ingress.spec.rules[0].host",
    "Ingress.spec.tls[0].hosts[0]",
  ]);
  // Two domains give the same manifests but for the domain (and the config hash it changes).
  const normalized = async (domain: string) =>
    (await render("prod", domain)).yaml.replaceAll(domain, "<domain>")
      .replace(/guardyn-config-[a-z0-9]{10}/g, "guardyn-config-<hash>");
  assertEquals(await normalized("alpha.test"), await normalized("guardyn.example.net"));
  const ingress = find((await render("prod", "alpha.test")).manifests, "Ingress", "guardyn-api");
  // deno-lint-ignore no-explicit-any
  assertEquals((ingress as any).spec.rules[0].host, "api.alpha.test");
});

async function sourceFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) files.push(...await sourceFiles(path));
    else if (/\.(ya?ml|env|conf)$/.test(entry.name)) files.push(path);
  }
  return files.sort();
}

Deno.test("kube: no manifest source writes a domain literally", async () => {
  const { manifests } = await render("prod");
  const internal = new Set(manifests.filter((m) => kindOf(m) === "Service").map(nameOf));
  const files = await sourceFiles(`${ROOT}/infra/k8s`);
  assert(files.length >= 15, `found only ${files.length} source files`);
  for (const file of files) {
    const text = await Deno.readTextFile(file);
    const values: unknown[] = /\.ya?ml$/.test(file)
      ? text.split(/^---$/m).map((doc) => parse(doc))
      : configFileValues(text);
    assertEquals(domainLiterals(values, internal), [], file);
  }
  const internalNames = new Set(["scylla", "nats-headless"]);
  // The detector itself: public names are found, in-cluster names and API groups are not.
  assertEquals(
    domainLiterals({ spec: { rules: [{ host: "api.chat.example.org" }] } }, internalNames),
    ["api.chat.example.org"],
  );
  assertEquals(
    domainLiterals({ env: [{ value: "https://turn.example.com:3478/x" }] }, internalNames),
    [
      "turn.example.com",
    ],
  );
  assertEquals(domainLiterals(["DOMAIN=guardyn.localhost"], internalNames), ["guardyn.localhost"]);
  assertEquals(
    domainLiterals({
      host: API_HOST_TEMPLATE,
      seeds: "--seeds=scylla-0.scylla",
      url: "nats://nats-0.nats-headless:6222",
      svc: "scylla-client.guardyn.svc.cluster.local:9042",
      topologyKey: "topology.kubernetes.io/zone",
      file: "/var/run/secrets/guardyn/token-keys/token-keys.json",
      image: "docker.io/scylladb/scylla:6.2.3",
      apiVersion: "networking.k8s.io/v1",
      labels: { "app.kubernetes.io/name": "auth" },
      listen: "0.0.0.0:4222",
    }, internalNames),
    [],
  );
});

Deno.test("kube: rendering without the domain file fails instead of guessing", async () => {
  const work = await Deno.makeTempDir({ prefix: "guardyn-nodomain-" });
  try {
    await run("cp", ["-r", `${ROOT}/infra/k8s`, `${work}/k8s`]);
    await Deno.remove(`${work}/k8s/components/domain/domain.env`).catch(() => {});
    const { command, args } = await kustomize();
    const result = await run(command, [...args, `${work}/k8s/overlays/local`]);
    assert(result.code !== 0, "rendered without a domain");
    assertMatch(result.stderr, /domain\.env/);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
  assertThrows(() => checkDomain(undefined), /DOMAIN is not set/);
  assertThrows(() => checkDomain("not a domain"), /DOMAIN=.*must be a DNS name/);
  assertThrows(() => checkDomain("-bad.example.org"), /DNS name/);
  assertEquals(checkDomain("Chat.Example.ORG"), "chat.example.org");
});

Deno.test("kube: every image is pinned to the chosen registry and tag", async () => {
  const specs = await catalog();
  for (const overlay of OVERLAYS) {
    const { manifests } = await render(overlay);
    const images = manifests.flatMap((m) =>
      // deno-lint-ignore no-explicit-any
      ((m as any).spec?.template?.spec?.containers ?? []).map((c: any) => String(c.image))
    );
    const ours = images.filter((image) => image.includes("guardyn-"));
    assertEquals(ours.length, specs.length + 1, String(images));
    for (const image of ours) {
      assertMatch(image, /^registry\.test:5000\/guardyn\/guardyn-[a-z-]+:git-0123456789ab$/);
    }
    // Third-party images carry an explicit version, never :latest.
    for (const image of images.filter((i) => !i.includes("guardyn-"))) {
      assertMatch(image, /:v?[0-9][0-9A-Za-z.-]*$/, image);
    }
  }
  assertThrows(
    () => renderKustomization("local", specs, { ...TEST_IMAGES, tag: "bad tag" }),
    /not a valid tag/,
  );
  assertThrows(
    () => renderKustomization("local", specs, { ...TEST_IMAGES, registry: "https://x" }),
    /not host\[:port\]/,
  );
});

Deno.test("kube: coturn shares the media service's TURN secret and relays to public peers only", async () => {
  for (const overlay of OVERLAYS) {
    const { manifests } = await render(overlay);
    // deno-lint-ignore no-explicit-any
    const get = (kind: string, name: string): any => find(manifests, kind, name);
    const coturn = get("Deployment", "turn").spec.template.spec.containers[0];
    const args: string[] = coturn.args;
    for (const flag of ["--use-auth-secret", "--no-loopback-peers", "--no-multicast-peers"]) {
      assert(args.includes(flag), `${overlay}: coturn runs ${flag}`);
    }
    assert(args.includes("--static-auth-secret=$(TURN_SHARED_SECRET)"));
    assertEquals(
      coturn.env.find((e: { name: string }) => e.name === "TURN_SHARED_SECRET").valueFrom,
      { secretKeyRef: { name: "guardyn-turn", key: "TURN_SHARED_SECRET" } },
    );
    // The media service reads the same Secret (TURN_SHARED_SECRET signs its credentials).
    const media = get("Deployment", "media").spec.template.spec.containers[0];
    const secrets = media.envFrom.map((s: { secretRef?: { name: string } }) => s.secretRef?.name);
    assert(secrets.includes("guardyn-turn") && secrets.includes("guardyn-s3"), String(secrets));
    for (const low of ["10.0.0.0", "172.16.0.0", "192.168.0.0", "127.0.0.0", "169.254.0.0"]) {
      assert(args.some((a) => a.startsWith(`--denied-peer-ip=${low}-`)), `${overlay}: ${low}`);
    }
    const service = get("Service", "turn").spec;
    const ports = service.ports.map((p: { protocol: string; port: number }) =>
      `${p.protocol}/${p.port}`
    );
    assert(ports.includes("UDP/3478") && ports.includes("TCP/3478"), String(ports));
    assertEquals(service.type, "LoadBalancer");
    // Its relay egress excludes the private ranges, as coturn does.
    const policy = get("NetworkPolicy", "turn").spec;
    assert(policy.egress[0].to[0].ipBlock.except.includes("10.0.0.0/8"));
    // Media keeps blobs on S3, the in-cluster gateway.
    // deno-lint-ignore no-explicit-any
    const config: any = manifests.find((m) =>
      kindOf(m) === "ConfigMap" && nameOf(m).startsWith("guardyn-config")
    );
    assertEquals([config.data.MEDIA_BACKEND, config.data.S3_ENDPOINT], ["s3", "http://s3:7070"]);
  }
});
