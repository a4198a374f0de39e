/**
 * Test clients on the gRPC-Web listener (the path the SDK uses): the generated grpc-js client
 * shapes over fetch (client/web_rpc.ts), each on its own HTTP/2 connection.
 */

import { Buffer } from "node:buffer";
import type * as grpc from "@grpc/grpc-js";
import { denoHttpClient, webServiceClient } from "../../client/web_rpc.ts";

/** A client for `definition` (e.g. AuthServiceService) typed as its grpc-js client `C`. */
export function webClient<C>(definition: object, address: string): C & { close(): void } {
  const baseUrl = `http://${address}`;
  const httpClient = denoHttpClient(baseUrl);
  const client = webServiceClient(definition, { baseUrl, ...(httpClient ? { httpClient } : {}) });
  return Object.assign(client, { close: () => httpClient?.close() }) as unknown as
    & C
    & { close(): void };
}

/** Raw-bytes calls on the gRPC-Web listener, shaped like grpc-js's `Client` methods. */
export interface RawWebClient {
  makeUnaryRequest(
    path: string,
    serialize: (value: Uint8Array) => Buffer,
    deserialize: (bytes: Buffer) => Buffer,
    body: Uint8Array,
    metadata: grpc.Metadata,
    options: { deadline: number },
    callback: (error: grpc.ServiceError | null) => void,
  ): void;
  makeBidiStreamRequest(
    path: string,
    serialize: (value: Uint8Array) => Buffer,
    deserialize: (bytes: Buffer) => Buffer,
    metadata: grpc.Metadata,
  ): grpc.ClientDuplexStream<Uint8Array, Buffer>;
  close(): void;
}

export function rawWebClient(address: string): RawWebClient {
  const baseUrl = `http://${address}`;
  const httpClient = denoHttpClient(baseUrl);
  const options = { baseUrl, ...(httpClient ? { httpClient } : {}) };
  const method = (path: string, stream: boolean) => ({
    call: {
      path,
      requestStream: stream,
      responseStream: stream,
      requestSerialize: (bytes: Uint8Array) => Buffer.from(bytes),
      requestDeserialize: (bytes: Buffer) => bytes,
      responseSerialize: (bytes: Buffer) => bytes,
      responseDeserialize: (bytes: Buffer) => bytes,
    },
  });
  return {
    makeUnaryRequest(path, _serialize, _deserialize, body, metadata, callOptions, callback) {
      webServiceClient(method(path, false), options).call!(body, metadata, callOptions, callback);
    },
    makeBidiStreamRequest(path, _serialize, _deserialize, metadata) {
      return webServiceClient(method(path, true), options).call!(
        metadata,
      ) as grpc.ClientDuplexStream<
        Uint8Array,
        Buffer
      >;
    },
    close: () => httpClient?.close(),
  };
}
