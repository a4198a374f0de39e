/**
 * The smallest real Guardyn service (docs/ADDING_A_SERVICE.md): one RPC that tells the calling
 * device how many devices its account has and how many more it may link. It declares settings,
 * one store need, no bus events, Kubernetes sizing, and registers one gRPC service.
 *
 * A product service defines its contract in proto/guardyn/v1/<name>.proto and uses the ts-proto
 * definitions `deno task proto` generates; this example hand-writes a JSON-encoded definition
 * so that it needs no generated files.
 */

import type * as grpc from "@grpc/grpc-js";
import { defineService } from "../../../services/kit/service_module.ts";
import { type Handlers, requireAuth } from "../../../services/platform/grpc_server.ts";
import { RateLimiter } from "../../../services/platform/rate_limit.ts";
import { type DeviceRoom, deviceRoom } from "./device_count_rules.ts";
import { readDeviceCountSettings } from "./settings.ts";

const json = <T>() => ({
  serialize: (value: T) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer) => JSON.parse(bytes.toString() || "{}") as T,
});
const request = json<Record<string, never>>();
const response = json<DeviceRoom>();

export const DeviceCountServiceDefinition = {
  count: {
    path: "/guardyn.example.v1.DeviceCountService/Count",
    requestStream: false,
    responseStream: false,
    requestSerialize: request.serialize,
    requestDeserialize: request.deserialize,
    responseSerialize: response.serialize,
    responseDeserialize: response.deserialize,
  },
} satisfies grpc.ServiceDefinition;

export const deviceCountModule = defineService({
  name: "device-count",
  grpcServices: ["guardyn.example.v1.DeviceCountService"],
  settings: readDeviceCountSettings,
  stores: ["auth"],
  events: { publishes: [], consumes: [] },
  deploy: {
    resources: { cpu: "50m", memory: "64Mi", memoryLimit: "128Mi" },
    prod: { minReplicas: 2, maxReplicas: 3 },
  },
  start({ platform, settings, store }) {
    const limiter = new RateLimiter({
      burst: settings.countsPerMinute,
      perSecond: settings.countsPerMinute / 60,
    });
    const handlers: Handlers<typeof DeviceCountServiceDefinition> = {
      async count(_request, ctx) {
        const auth = requireAuth(ctx);
        limiter.take(`${auth.accountId}/${auth.deviceId}`, "device counts");
        const devices = await store.auth.devices.list(auth.accountId);
        return deviceRoom(devices.length, platform.accounts.maxDevicesPerAccount);
      },
    };
    return Promise.resolve({
      register(server) {
        server.addService(
          "guardyn.example.v1.DeviceCountService",
          DeviceCountServiceDefinition,
          handlers,
        );
      },
    });
  },
});
