/**
 * SendStream: many sends on one bidirectional stream. A unary call per message costs the server
 * about three times the CPU of a message on a stream (headers, trailers and call setup; see
 * docs/BENCHMARKS.md), so clients that send continuously use this instead. Each request runs
 * through the very same SendMessage handler (checks, limits, rate limit, idempotency) and its
 * outcome, the response or the error SendMessage would have ended with, is written back with the
 * request's id. A refused request never ends the stream.
 *
 * Bounds: a device holds at most MESSAGING_MAX_SEND_STREAMS_PER_DEVICE streams and an instance
 * MESSAGING_MAX_SEND_STREAMS. At most SEND_STREAM_IN_FLIGHT requests run at once per stream; beyond that, and while
 * the client is not reading its answers, the stream stops reading, so HTTP/2 flow control holds
 * the client back and nothing is dropped. Each request has the unary deadline. The stream ends
 * with UNAUTHENTICATED (TOKEN_EXPIRED) when its access token expires, like a new call would.
 */

import type * as grpc from "@grpc/grpc-js";
import { StreamSlots } from "../kit/stream_slots.ts";
import { status } from "@grpc/grpc-js";
import { type CallContext, requireAuth, withDeadline } from "../platform/grpc_server.ts";
import { GuardynError, invalidArgument, unauthenticated } from "../platform/errors.ts";
import { ErrorReason } from "../../proto/gen/guardyn/v1/common.ts";
import type {
  SendFailure,
  SendMessageRequest,
  SendMessageResponse,
  SendStreamRequest,
  SendStreamResponse,
} from "../../proto/gen/guardyn/v1/messaging.ts";

/** Requests of one stream handled at once (the contract says 64). */
export const SEND_STREAM_IN_FLIGHT = 64;

/** Open SendStreams, bounded per device and per instance. */
export class SendStreamSlots extends StreamSlots {
  constructor(limits: { perDevice: number; perInstance: number }) {
    super(limits, "SendStreams");
  }
}

export interface SendStreamDeps {
  /** The SendMessage handler: a streamed send is exactly a SendMessage call. */
  sendMessage: (request: SendMessageRequest, ctx: CallContext) => Promise<SendMessageResponse>;
  /** Per request, as the unary deadline. */
  requestTimeoutMs: number;
  /** When the stream's token expires (ms since the epoch), if known. */
  tokenExpiryMs?: number;
  now: () => number;
  /** Bounds the open streams; the slot is released when the stream ends, however it ends. */
  slots: SendStreamSlots;
  onOutcome?: (code: grpc.status) => void;
}

type Call = grpc.ServerDuplexStream<SendStreamRequest, SendStreamResponse>;

export function serveSendStream(call: Call, ctx: CallContext, deps: SendStreamDeps): Promise<void> {
  const auth = requireAuth(ctx);
  const release = deps.slots.take(`${auth.accountId}/${auth.deviceId}`);
  return new Promise<void>((resolve, reject) => {
    let inFlight = 0;
    let writeBlocked = false;
    let ended = false;
    let finished = false;
    const finish = (error?: unknown) => {
      if (finished) return;
      finished = true;
      clearTimeout(expiry);
      release();
      if (error === undefined) resolve();
      else reject(error);
    };
    const expiry = deps.tokenExpiryMs === undefined ? undefined : setTimeout(
      () => finish(unauthenticated("TOKEN_EXPIRED", "the access token of this stream has expired")),
      Math.max(0, deps.tokenExpiryMs - deps.now()),
    );
    const adjustReading = () => {
      if (inFlight >= SEND_STREAM_IN_FLIGHT || writeBlocked) call.pause();
      else call.resume();
    };
    const answer = (response: SendStreamResponse) => {
      if (finished) return;
      if (!call.write(response)) {
        writeBlocked = true;
        adjustReading();
      }
    };
    call.on("drain", () => {
      writeBlocked = false;
      adjustReading();
    });
    // Client cancellation, shutdown: the kit ends the call; stop the expiry timer with it.
    ctx.signal.addEventListener("abort", () => finish(ctx.signal.reason), { once: true });
    call.on("data", (request: SendStreamRequest) => {
      if (finished) return;
      inFlight++;
      adjustReading();
      void handle(request, ctx, deps).then((response) => {
        inFlight--;
        answer(response);
        adjustReading();
        if (ended && inFlight === 0) finish();
      });
    });
    call.on("end", () => {
      ended = true;
      if (inFlight === 0) finish();
    });
    call.on("error", () => {});
  });
}

/** One request: its answer, never a rejection. */
async function handle(
  request: SendStreamRequest,
  ctx: CallContext,
  deps: SendStreamDeps,
): Promise<SendStreamResponse> {
  const requestId = request.requestId;
  try {
    if (request.send === undefined) throw invalidArgument("send is required");
    const sent = await withDeadline(deps.sendMessage(request.send, ctx), deps.requestTimeoutMs);
    deps.onOutcome?.(status.OK);
    return { requestId, result: { $case: "sent", value: sent } };
  } catch (error) {
    const failed = toFailure(error, ctx, requestId);
    deps.onOutcome?.(failed.code);
    return { requestId, result: { $case: "failed", value: failed } };
  }
}

/** The status SendMessage would have ended with, as a value; internals stay in the log. */
function toFailure(error: unknown, ctx: CallContext, requestId: number): SendFailure {
  if (error instanceof GuardynError) {
    const reason = ErrorReason[`ERROR_REASON_${error.reason}` as keyof typeof ErrorReason];
    return {
      code: error.code,
      reason,
      message: error.message,
      detail: error.detail ?? new Uint8Array(0),
      retryAfterMs: Math.max(0, Math.ceil(error.retryAfterMs ?? 0)),
    };
  }
  ctx.log.error("streamed send failed", { error, sendRequestId: requestId });
  return {
    code: status.INTERNAL,
    reason: ErrorReason.ERROR_REASON_INTERNAL,
    message: `internal error (request id ${ctx.requestId}, send ${requestId})`,
    detail: new Uint8Array(0),
    retryAfterMs: 0,
  };
}
