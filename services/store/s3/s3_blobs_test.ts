/**
 * The blob store conformance suite on a real S3 server (versitygw, started by `deno task test`
 * from S3_* in the environment), plus the S3 adapter's own behaviour: refusal of a store that
 * does not answer, and credentials that never show in what it reports.
 */
import { assert, assertEquals, captureRejection } from "../../../tests/assert.ts";
import { registerBlobSuite } from "../conformance/blob_suite.ts";
import { PART_BYTES, S3BlobStore, type S3Config } from "./s3_blobs.ts";
import { freePort } from "../../../tests/support/net.ts";

function config(): S3Config {
  const need = (name: string) => {
    const value = Deno.env.get(name);
    if (!value) {
      throw new Error(`these tests need an S3 server: set ${name} (deno task test starts one)`);
    }
    return value;
  };
  return {
    endpoint: need("S3_ENDPOINT"),
    region: need("S3_REGION"),
    bucket: need("S3_BUCKET"),
    accessKeyId: need("S3_ACCESS_KEY_ID"),
    secretAccessKey: need("S3_SECRET_ACCESS_KEY"),
  };
}

registerBlobSuite({
  name: "s3",
  open: () => Promise.resolve(new S3BlobStore(config())),
  durableEvery: PART_BYTES,
  // fetch keeps pooled connections between tests.
  sanitize: false,
});

Deno.test({
  name: "s3 blobs: a store that does not answer fails ping with its location, no secrets",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const secret = "do-not-print-this-secret";
    const store = new S3BlobStore({
      endpoint: `http://127.0.0.1:${freePort()}`,
      region: "us-east-1",
      bucket: "nowhere",
      accessKeyId: "key",
      secretAccessKey: secret,
    });
    const error = await captureRejection(store.ping());
    assert(String(error).includes("does not answer"), String(error));
    assert(String(error).includes("/nowhere"), String(error));
    assert(!String(error).includes(secret) && !store.info.location.includes(secret));
  },
});

Deno.test({
  name: "s3 blobs: wrong credentials are refused by the server, with its reason",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const store = new S3BlobStore({ ...config(), secretAccessKey: "wrong-secret-0000000000" });
    const error = await captureRejection(store.ping());
    assert(/S3 GET answered 403/.test(String(error)), String(error));
    assertEquals(store.info.backend, "s3");
  },
});
