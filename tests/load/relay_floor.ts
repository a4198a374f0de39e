/**
 * The transport floor of a send → deliver → ack: what grpc-js on this runtime and machine allows
 * for Guardyn's message shape with no store, no auth and no protobuf. A unary Send pushes its
 * payload onto the recipient's bidirectional Receive stream, the recipient acknowledges by id in
 * that stream (acks batched per millisecond, like the load test's receivers), and the server
 * keeps unacknowledged payloads in a Map. Guardyn's own rate can only be compared to this. The
 * "stream" mode sends on one long-lived bidirectional stream per connection instead of one
 * unary call per message: what a streaming send API would allow.
 */
import * as grpc from "@grpc/grpc-js";
import { listenOnLoopback, rawMethod } from "./raw_grpc.ts";

const NO_CHANNELZ = { "grpc.enable_channelz": 0 };
const ID_BYTES = 8;

const RELAY = {
  send: rawMethod("/guardyn.load.Relay/Send"),
  sendStream: rawMethod("/guardyn.load.Relay/SendStream", {
    requestStream: true,
    responseStream: true,
  }),
  receive: rawMethod("/guardyn.load.Relay/Receive", { requestStream: true, responseStream: true }),
};

type Stream = grpc.ServerDuplexStream<Buffer, Buffer>;

/** The server role: prints `relay listening PORT`. */
export async function relayServer(): Promise<void> {
  const server = new grpc.Server(NO_CHANNELZ);
  const streams = new Map<number, Stream>();
  const unacked = new Map<bigint, Uint8Array>();
  let nextId = 1n;
  server.addService(RELAY, {
    send: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const stream = streams.get(call.request.readUInt32BE(0));
      if (stream === undefined) {
        callback({ code: grpc.status.FAILED_PRECONDITION, details: "recipient not streaming" });
        return;
      }
      const message = Buffer.alloc(ID_BYTES + call.request.length - 4);
      const id = nextId++;
      message.writeBigUInt64BE(id, 0);
      call.request.copy(message, ID_BYTES, 4);
      unacked.set(id, message);
      stream.write(message);
      callback(null, message.subarray(0, ID_BYTES));
    },
    sendStream: (call: Stream) => {
      call.on("data", (request: Buffer) => {
        const stream = streams.get(request.readUInt32BE(0));
        const message = Buffer.alloc(ID_BYTES + request.length - 4);
        const id = nextId++;
        message.writeBigUInt64BE(id, 0);
        request.copy(message, ID_BYTES, 4);
        unacked.set(id, message);
        stream?.write(message);
        call.write(message.subarray(0, ID_BYTES));
      });
      call.on("end", () => call.end());
      call.on("error", () => {});
    },
    receive: (call: Stream) => {
      let registered: number | undefined;
      call.on("data", (chunk: Buffer) => {
        if (registered === undefined) {
          registered = chunk.readUInt32BE(0);
          streams.set(registered, call);
          call.write(Buffer.alloc(0)); // "drained": the stream is live
          return;
        }
        for (let at = 0; at + ID_BYTES <= chunk.length; at += ID_BYTES) {
          unacked.delete(chunk.readBigUInt64BE(at));
        }
      });
      call.on("end", () => {
        if (registered !== undefined) streams.delete(registered);
        call.end();
      });
      call.on("error", () => {});
    },
  });
  console.log(`relay listening ${await listenOnLoopback(server)}`);
}

type RelayClient = grpc.Client & {
  sendStream(): grpc.ClientDuplexStream<Uint8Array, Buffer>;
  send(request: Uint8Array, callback: (e: grpc.ServiceError | null) => void): void;
  receive(): grpc.ClientDuplexStream<Uint8Array, Buffer>;
};

export interface RelayFloor {
  /** Messages sent, warm-up included (for CPU per message). */
  messages: number;
  messagesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/** Closed loop like the sustained Guardyn run: `concurrency` sends in flight for `seconds`. */
export async function measureRelayFloor(
  address: string,
  options: {
    seconds: number;
    concurrency: number;
    receivers: number;
    payload: Uint8Array;
    /** "unary": one call per send, as Guardyn's SendMessage; "stream": sends on one stream. */
    sendMode: "unary" | "stream";
  },
): Promise<RelayFloor> {
  const Relay = grpc.makeGenericClientConstructor(RELAY, "Relay");
  const lanes = Array.from(
    { length: 4 },
    (_, i) =>
      new Relay(address, grpc.credentials.createInsecure(), {
        ...NO_CHANNELZ,
        "grpc.use_local_subchannel_pool": 1,
        "grpc.lane": i,
      }) as unknown as RelayClient,
  );
  const latencies: number[] = [];
  let live = 0;
  const receivers = Array.from({ length: options.receivers }, (_, index) => {
    const call = lanes[index % lanes.length]!.receive();
    let pending: Buffer[] = [];
    call.on("data", (message: Buffer) => {
      if (message.length === 0) {
        live++;
        return;
      }
      // The payload starts with its send time (same process, same clock).
      latencies.push(performance.now() - message.readDoubleBE(ID_BYTES));
      pending.push(message.subarray(0, ID_BYTES));
      if (pending.length === 1) {
        setTimeout(() => {
          call.write(Buffer.concat(pending));
          pending = [];
        }, 1);
      }
    });
    call.on("error", () => {});
    const hello = Buffer.alloc(4);
    hello.writeUInt32BE(index, 0);
    call.write(hello);
    return call;
  });
  while (live < receivers.length) await new Promise((r) => setTimeout(r, 5));

  const request = (recipient: number) => {
    const body = Buffer.alloc(4 + Math.max(8, options.payload.length));
    body.writeUInt32BE(recipient, 0);
    body.set(options.payload, 4);
    body.writeDoubleBE(performance.now(), 4);
    return body;
  };
  // One long-lived send stream per connection, answers in order (the "stream" mode).
  const streaming = options.sendMode === "stream";
  const senders = streaming
    ? lanes.map((lane) => {
      const call = lane.sendStream();
      const waiting: (() => void)[] = [];
      call.on("data", () => waiting.shift()?.());
      call.on("error", () => {});
      return { call, waiting };
    })
    : [];
  const send = (lane: number, recipient: number) =>
    streaming
      ? new Promise<void>((resolve) => {
        const s = senders[lane % senders.length]!;
        s.waiting.push(resolve);
        s.call.write(request(recipient));
      })
      : new Promise<void>((resolve, reject) => {
        lanes[lane % lanes.length]!.send(request(recipient), (e) => e ? reject(e) : resolve());
      });
  for (let i = 0; i < 200; i++) await send(i, i % receivers.length); // warm up
  await new Promise((r) => setTimeout(r, 50));
  latencies.length = 0;
  let sent = 0;
  const started = performance.now();
  const deadline = started + options.seconds * 1000;
  await Promise.all(Array.from({ length: options.concurrency }, async (_, worker) => {
    while (performance.now() < deadline) {
      const n = sent++;
      await send(worker, (n * 7) % receivers.length);
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 100)); // the last pushes
  for (const call of receivers) call.end();
  for (const sender of senders) sender.call.end();
  await new Promise((r) => setTimeout(r, 200));
  latencies.sort((a, b) => a - b);
  const at = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  return {
    messages: sent + 200,
    messagesPerSecond: Math.round(sent / elapsed),
    p50Ms: Number(at(0.5).toFixed(2)),
    p99Ms: Number(at(0.99).toFixed(2)),
  };
}
