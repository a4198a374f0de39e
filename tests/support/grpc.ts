/** Promise-based calls on ts-proto's grpc-js clients, for tests and tools. */

import * as grpc from "@grpc/grpc-js";

export function bearer(token?: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

/** The last (fullest) overload of a generated unary method: TypeScript infers from it. */
type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (error: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

const CALL_TIMEOUT_MS = 60_000;

/** Calls a unary method; `token` goes to the authorization metadata. */
export function unary<Req, Res>(
  method: UnaryMethod<Req, Res>,
  request: Req,
  token?: string,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const options = { deadline: Date.now() + CALL_TIMEOUT_MS };
    method(
      request,
      bearer(token),
      options,
      (error, response) => error ? reject(error) : resolve(response),
    );
  });
}

/** Collects every message of a server stream until it ends (or fails). */
export function collect<Res>(stream: grpc.ClientReadableStream<Res>): Promise<Res[]> {
  return new Promise((resolve, reject) => {
    const messages: Res[] = [];
    stream.on("data", (message: Res) => messages.push(message));
    stream.on("error", reject);
    stream.on("end", () => resolve(messages));
  });
}

/** The status code and reason of a failed call. */
export async function failure(
  promise: Promise<unknown>,
): Promise<{ code: grpc.status; reason: string | undefined; details: string }> {
  try {
    await promise;
  } catch (error) {
    const serviceError = error as grpc.ServiceError;
    const reason = serviceError.metadata?.get("guardyn-error-reason")[0];
    return {
      code: serviceError.code,
      reason: typeof reason === "string" ? reason : undefined,
      details: serviceError.details,
    };
  }
  throw new Error("expected the call to fail");
}
