/**
 * BlobStore on any S3-compatible service (AWS S3, MinIO, versitygw...), with `aws4fetch` for
 * SigV4. A blob is one multipart upload: bytes are buffered into parts of PART_BYTES (S3 needs
 * at least 5 MiB for every part but the last), each part uploaded as it fills, so at most one
 * part per writer is held in memory; a resume lists the uploaded parts (their total is the
 * durable size) and continues after them. Completing sends the last part and the part list.
 */
import { AwsClient } from "aws4fetch";
import {
  BlobInputError,
  type BlobStore,
  type BlobWriter,
  checkBlobKey,
  checkOffset,
} from "../blob_ports.ts";

export interface S3Config {
  endpoint: string;
  region: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/** Multipart part size: above S3's 5 MiB minimum, small enough to bound memory per upload. */
export const PART_BYTES = 8 * 1024 * 1024;
const REQUEST_TIMEOUT_MS = 30_000;

interface Part {
  number: number;
  etag: string;
  size: number;
}

export class S3BlobStore implements BlobStore {
  readonly info: { backend: "s3"; location: string };
  readonly #aws: AwsClient;
  readonly #base: string;

  constructor(config: S3Config) {
    const endpoint = config.endpoint.replace(/\/+$/, "");
    this.#base = `${endpoint}/${encodeURIComponent(config.bucket)}`;
    // The location names the endpoint and bucket, never the credentials.
    this.info = { backend: "s3", location: `${endpoint}/${config.bucket}` };
    this.#aws = new AwsClient({
      accessKeyId: config.accessKeyId,
      secretAccessKey: config.secretAccessKey,
      region: config.region,
      service: "s3",
    });
  }

  async begin(key: string): Promise<string> {
    checkBlobKey(key);
    const response = await this.#send(`${this.#url(key)}?uploads`, { method: "POST" });
    const uploadId = xmlValue(await response.text(), "UploadId");
    if (!uploadId) throw new Error("S3 CreateMultipartUpload answered without an UploadId");
    return uploadId;
  }

  async resume(key: string, uploadId: string) {
    checkBlobKey(key);
    const parts = await this.#parts(key, uploadId);
    let committed = parts.reduce((n, p) => n + p.size, 0);
    let buffer: Uint8Array[] = [];
    let buffered = 0;
    let closed = false;
    const uploadPart = async (bytes: Uint8Array<ArrayBuffer>) => {
      const number = parts.length + 1;
      const response = await this.#send(
        `${this.#url(key)}?partNumber=${number}&uploadId=${encodeURIComponent(uploadId)}`,
        { method: "PUT", body: bytes },
      );
      const etag = response.headers.get("etag");
      if (!etag) throw new Error("S3 UploadPart answered without an ETag");
      await response.body?.cancel();
      parts.push({ number, etag, size: bytes.length });
      committed += bytes.length;
    };
    const take = (size: number) => {
      const out = new Uint8Array(size);
      let at = 0;
      while (at < size) {
        const head = buffer[0]!;
        const n = Math.min(head.length, size - at);
        out.set(head.subarray(0, n), at);
        at += n;
        if (n === head.length) buffer.shift();
        else buffer[0] = head.subarray(n);
      }
      buffered -= size;
      return out;
    };
    const writer: BlobWriter = {
      write: async (chunk) => {
        if (closed) throw new BlobInputError("the upload is complete");
        buffer.push(chunk.slice());
        buffered += chunk.length;
        while (buffered >= PART_BYTES) await uploadPart(take(PART_BYTES));
        return committed;
      },
      complete: async () => {
        if (closed) throw new BlobInputError("the upload is complete");
        closed = true;
        // S3 needs at least one part; the last may be short (or empty for an empty blob).
        if (buffered > 0 || parts.length === 0) await uploadPart(take(buffered));
        const body = "<CompleteMultipartUpload>" +
          parts.map((p) =>
            `<Part><PartNumber>${p.number}</PartNumber><ETag>${p.etag}</ETag></Part>`
          )
            .join("") +
          "</CompleteMultipartUpload>";
        const response = await this.#send(
          `${this.#url(key)}?uploadId=${encodeURIComponent(uploadId)}`,
          { method: "POST", body },
        );
        const text = await response.text();
        // S3 may answer 200 with an error document inside.
        if (text.includes("<Error>")) {
          throw new Error(`S3 CompleteMultipartUpload: ${xmlValue(text, "Message")}`);
        }
        return committed;
      },
      close: () => {
        closed = true;
        buffer = [];
        buffered = 0;
        return Promise.resolve();
      },
    };
    return { writer, committed };
  }

  async abort(key: string, uploadId: string): Promise<void> {
    checkBlobKey(key);
    const response = await this.#send(
      `${this.#url(key)}?uploadId=${encodeURIComponent(uploadId)}`,
      { method: "DELETE" },
      [404],
    );
    await response.body?.cancel();
  }

  async read(key: string, offset: number) {
    checkBlobKey(key);
    checkOffset(offset);
    const headers = offset > 0 ? { range: `bytes=${offset}-` } : undefined;
    const response = await this.#send(this.#url(key), { method: "GET", headers }, [404, 416]);
    if (response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    if (response.status === 416) {
      // Past the end: an empty read of an existing blob.
      await response.body?.cancel();
      return new ReadableStream<Uint8Array>({ start: (c) => c.close() });
    }
    return response.body ?? new ReadableStream<Uint8Array>({ start: (c) => c.close() });
  }

  async size(key: string): Promise<number | undefined> {
    checkBlobKey(key);
    const response = await this.#send(this.#url(key), { method: "HEAD" }, [404]);
    await response.body?.cancel();
    if (response.status === 404) return undefined;
    return Number(response.headers.get("content-length"));
  }

  async delete(key: string): Promise<boolean> {
    const existed = await this.size(key) !== undefined;
    const response = await this.#send(this.#url(key), { method: "DELETE" }, [404]);
    await response.body?.cancel();
    return existed;
  }

  async ping(): Promise<void> {
    let response: Response;
    try {
      response = await this.#send(`${this.#base}?list-type=2&max-keys=1`, { method: "GET" });
    } catch (error) {
      throw new Error(
        `S3 store ${this.info.location} does not answer: ${(error as Error).message}`,
        { cause: error },
      );
    }
    await response.body?.cancel();
  }

  async #parts(key: string, uploadId: string): Promise<Part[]> {
    const parts: Part[] = [];
    let marker = 0;
    for (;;) {
      const response = await this.#send(
        `${this.#url(key)}?uploadId=${encodeURIComponent(uploadId)}&part-number-marker=${marker}`,
        { method: "GET" },
        [404],
      );
      const text = await response.text();
      if (response.status === 404) throw new BlobInputError("no such upload");
      for (const block of text.match(/<Part>[\s\S]*?<\/Part>/g) ?? []) {
        parts.push({
          number: Number(xmlValue(block, "PartNumber")),
          etag: xmlValue(block, "ETag")!.replaceAll("&quot;", '"'),
          size: Number(xmlValue(block, "Size")),
        });
      }
      if (xmlValue(text, "IsTruncated") !== "true") break;
      marker = Number(xmlValue(text, "NextPartNumberMarker"));
    }
    parts.sort((a, b) => a.number - b.number);
    // Only a gap-free run of parts counts: anything after a gap is re-sent.
    const run = parts.filter((p, i) => p.number === i + 1);
    return run;
  }

  #url(key: string): string {
    return `${this.#base}/${key}`;
  }

  /** A signed request; statuses other than 2xx and `allowed` fail with S3's own message. */
  async #send(url: string, init: RequestInit, allowed: number[] = []): Promise<Response> {
    const response = await this.#aws.fetch(url, {
      ...init,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (response.ok || allowed.includes(response.status)) return response;
    const text = await response.text().catch(() => "");
    throw new Error(
      `S3 ${init.method} answered ${response.status}: ${xmlValue(text, "Code") ?? ""} ` +
        `${xmlValue(text, "Message") ?? ""}`.trim(),
    );
  }
}

function xmlValue(xml: string, tag: string): string | undefined {
  const match = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(xml);
  return match?.[1];
}
