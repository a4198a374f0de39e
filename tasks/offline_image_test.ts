/**
 * The offline image form, built for real and started: the module cache is prepared in a fresh
 * DENO_DIR, the service runs with --cached-only and its narrow permissions, answers /readyz,
 * and registers an account (the Argon2 native addon loads from the prepared cache).
 */
import { join } from "node:path";
import { assert, assertEquals } from "../tests/assert.ts";
import { compileTargets } from "./build.ts";
import { buildOfflineImage, offlineRunArgs } from "./offline_image.ts";
import { smokeStart } from "./smoke_start.ts";
import { catalog, ROOT } from "./kube_test_kit.ts";

Deno.test("offline image: run arguments are cached-only, frozen and narrow", () => {
  const args = offlineRunArgs("/img", "services/auth/main.ts");
  assertEquals(args.slice(0, 3), ["run", "--cached-only", "--frozen"]);
  assert(args.includes("--allow-run=/img/deno"));
  assert(!args.includes("-A") && !args.includes("--allow-all") && !args.includes("--allow-run"));
  assert(args.includes("--allow-write=/tmp"));
  assertEquals(args.at(-1), "/img/app/services/auth/main.ts");
});

Deno.test({
  name: "offline image: built from the lock file, a service starts from it and hashes with Argon2",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const out = await Deno.makeTempDir({ prefix: "guardyn-offline-" });
    try {
      const auth = compileTargets(await catalog()).filter((t) => t.binary === "auth");
      await buildOfflineImage(ROOT, out, auth);
      assert((await Deno.stat(join(out, "deno_dir", "npm"))).isDirectory);
      // Nothing local: no database, profile or key file is copied.
      for await (const entry of Deno.readDir(join(out, "app"))) {
        assert(!entry.name.startsWith(".guardyn"), entry.name);
      }
      const result = await smokeStart("auth", join(out, "guardyn"), ["auth"], {
        // No registry may be reached (--cached-only already forbids downloads): any fetch
        // beyond loopback goes to a proxy that is not there.
        HTTPS_PROXY: "http://127.0.0.1:9",
        HTTP_PROXY: "http://127.0.0.1:9",
        NO_PROXY: "127.0.0.1,localhost",
      });
      assertEquals(result, { service: "auth", ready: true, argon2: true });
      const usage = await smokeStart("auth", join(out, "guardyn"), ["nothing"]).catch((e) =>
        String(e)
      );
      assert(String(usage).includes("exited with 64"), String(usage));
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
