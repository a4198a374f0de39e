/**
 * gRPC-Web bodies and statuses where grpc-js meets the wire: the SDK's fetch client, the server's
 * web listener and the native gateway workers all convert the same way, here.
 */

import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import {
  FLAG_GRPC_WEB_TRAILER,
  FrameReader,
  parseGrpcWebTrailer,
  type WireStatus,
} from "./web_wire.ts";

/** A grpc-js status (code, details, metadata) for a wire status; keys grpc-js refuses are dropped. */
export function toGrpcStatus(status: WireStatus): grpc.StatusObject {
  const metadata = new grpc.Metadata();
  for (const [key, value] of status.metadata) {
    try {
      metadata.set(key, typeof value === "string" ? value : Buffer.from(value));
    } catch {
      // A key grpc-js refuses: dropped.
    }
  }
  return { code: status.code, details: status.message, metadata };
}

/** The wire form of a grpc-js status object (as the server kit produces it). */
export function fromGrpcStatus(status: Partial<grpc.StatusObject> | null | undefined): WireStatus {
  const metadata: WireStatus["metadata"] = [];
  for (const [key, values] of Object.entries(status?.metadata?.getMap() ?? {})) {
    metadata.push([key, typeof values === "string" ? values : new Uint8Array(values)]);
  }
  return { code: status?.code ?? grpc.status.UNKNOWN, message: status?.details ?? "", metadata };
}

/**
 * Reads a gRPC-Web response body: each message frame to `onMessage` (awaited, so a caller can
 * apply backpressure; a status it returns ends the read), then the status of the trailer frame.
 */
export async function readGrpcWebBody(
  body: ReadableStream<Uint8Array>,
  maxMessageBytes: number,
  onMessage: (payload: Uint8Array) => Promise<WireStatus | void> | WireStatus | void,
): Promise<WireStatus> {
  const reader = new FrameReader(maxMessageBytes);
  for await (const chunk of body) {
    for (const { flags, payload } of reader.push(chunk)) {
      if (flags & FLAG_GRPC_WEB_TRAILER) return parseGrpcWebTrailer(payload);
      const stop = await onMessage(payload);
      if (stop) return stop;
    }
  }
  return {
    code: grpc.status.UNAVAILABLE,
    message: "the response ended without a status",
    metadata: [],
  };
}
