/**
 * The load scripts' bare grpc-js pieces: methods whose messages are raw bytes (no protobuf, so
 * only the transport is measured) and a server listening on a free loopback port.
 */
import * as grpc from "@grpc/grpc-js";

const view = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** A method carrying raw bytes both ways (no copy on serialization). */
export function rawMethod(
  path: string,
  streaming: { requestStream?: boolean; responseStream?: boolean } = {},
) {
  return {
    path,
    requestStream: streaming.requestStream ?? false,
    responseStream: streaming.responseStream ?? false,
    requestSerialize: view,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: view,
    responseDeserialize: (b: Buffer) => b,
  };
}

/** Binds `server` to 127.0.0.1 on a free port and returns the port. */
export function listenOnLoopback(server: grpc.Server): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createInsecure(),
      (error, port) => error ? reject(error) : resolve(port),
    )
  );
}
