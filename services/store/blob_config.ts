/**
 * Blob store selection, parsed from the environment (MEDIA_BACKEND, MEDIA_DIR, S3_*), only for
 * processes that run a service that keeps blobs.
 */
import { dirname, join } from "node:path";
import type { EnvReader } from "../platform/env.ts";
import type { StoreConfig } from "./config.ts";

/** The variables that name an S3 store (MEDIA_BACKEND=s3): passed on as a set by tests and tools. */
export const S3_VARIABLES = [
  "S3_ENDPOINT",
  "S3_REGION",
  "S3_BUCKET",
  "S3_ACCESS_KEY_ID",
  "S3_SECRET_ACCESS_KEY",
] as const;

/** Those variables from this process's environment (empty when unset). */
export function s3VariablesFromEnv(): Record<string, string> {
  return Object.fromEntries(S3_VARIABLES.map((name) => [name, Deno.env.get(name) ?? ""]));
}

export type BlobConfig =
  | { backend: "fs"; dir: string }
  | {
    backend: "s3";
    endpoint: string;
    region: string;
    bucket: string;
    accessKeyId: string;
    secretAccessKey: string;
  };

export function parseBlobConfig(read: EnvReader, store: StoreConfig): BlobConfig {
  const backend = read.oneOf("MEDIA_BACKEND", ["fs", "s3"] as const, "fs");
  if (backend === "fs") {
    const dir = read.optional("MEDIA_DIR") ??
      (store.backend === "sqlite" ? join(dirname(store.path), "media") : undefined);
    if (dir === undefined) {
      read.problems.push(
        "MEDIA_DIR is required with MEDIA_BACKEND=fs and STORE_BACKEND=cql (a volume every " +
          "media instance shares), or set MEDIA_BACKEND=s3",
      );
    }
    return { backend, dir: dir ?? "" };
  }
  const need = (name: string) => {
    const value = read.optional(name);
    if (!value) read.problems.push(`${name} is required when MEDIA_BACKEND=s3`);
    return value ?? "";
  };
  const endpoint = need("S3_ENDPOINT");
  if (endpoint && !/^https?:\/\/[^/\s]+(\/.*)?$/.test(endpoint)) {
    read.problems.push(`S3_ENDPOINT=${JSON.stringify(endpoint)} must be an http(s) URL`);
  }
  return {
    backend,
    endpoint,
    region: read.string("S3_REGION", "us-east-1"),
    bucket: need("S3_BUCKET"),
    accessKeyId: need("S3_ACCESS_KEY_ID"),
    secretAccessKey: need("S3_SECRET_ACCESS_KEY"),
  };
}

/** For startup logs: where blobs go, never a credential. */
export function describeBlobConfig(config: BlobConfig): Record<string, unknown> {
  return config.backend === "fs"
    ? { backend: "fs", dir: config.dir }
    : { backend: "s3", location: `${config.endpoint}/${config.bucket}` };
}
