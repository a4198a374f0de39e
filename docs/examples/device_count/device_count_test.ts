/**
 * The example service runs on the real runtime beside the auth service: a registered device
 * asks, and the answer comes from the store; undeclared events and gRPC services are refused.
 */

import * as grpc from "@grpc/grpc-js";
import { join } from "node:path";
import type { AnyServiceModule } from "../../../services/kit/service_module.ts";
import { memoryLogger } from "../../../services/platform/log.ts";
import { servicesNamed } from "../../../services/runtime/catalog.ts";
import { runServices } from "../../../services/runtime/runtime.ts";
import { assert, assertEquals } from "../../../tests/assert.ts";
import { clients, register } from "../../../tests/support/accounts_test_kit.ts";
import { bearer } from "../../../tests/support/grpc.ts";
import { NO_SANITIZERS } from "../../../tests/support/wait.ts";
import { webClient } from "../../../tests/support/web.ts";
import { deviceCountModule, DeviceCountServiceDefinition } from "./module.ts";

/** Runs `modules` on an embedded store in `dir`, listening on free ports. */
function run(modules: AnyServiceModule[], dir: string, env: Record<string, string> = {}) {
  return runServices(modules, {
    env: {
      SQLITE_PATH: join(dir, "g.db"),
      GRPC_LISTENER: "off",
      HTTP_PORT: "0",
      METRICS_PORT: "0",
      ...env,
    },
    log: memoryLogger("warn"),
  });
}

/** What a failed start threw. */
const startError = (starting: Promise<unknown>) =>
  starting.then(() => undefined, (error) => error as Error);

async function started(env: Record<string, string> = {}) {
  const dir = await Deno.makeTempDir({ prefix: "guardyn-example-" });
  const platform = await run([...servicesNamed(["auth"]), deviceCountModule], dir, env);
  return {
    address: `127.0.0.1:${platform.httpPort}`,
    stop: async () => {
      await platform.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test({
  name: "example device count: served by the runtime, answered from the store",
  ...NO_SANITIZERS,
  fn: async () => {
    const server = await started({ MAX_DEVICES_PER_ACCOUNT: "4" });
    const accounts = clients(server.address);
    // The SDK's transport: gRPC-Web on the runtime's HTTP listener.
    const client = webClient<{
      count(
        r: unknown,
        m: grpc.Metadata,
        cb: (e: grpc.ServiceError | null, v: { devices: number; remaining: number }) => void,
      ): void;
    }>(DeviceCountServiceDefinition, server.address);
    const count = (token?: string) =>
      new Promise<{ devices: number; remaining: number }>((resolve, reject) =>
        client.count({}, bearer(token), (error, value) => error ? reject(error) : resolve(value))
      );
    try {
      const device = await register(accounts);
      assertEquals(await count(device.accessToken), { devices: 1, remaining: 3 });
      const anonymous = await count().then(() => undefined, (error) => error);
      assertEquals((anonymous as grpc.ServiceError).code, grpc.status.UNAUTHENTICATED);
    } finally {
      client.close();
      accounts.close();
      await server.stop();
    }
  },
});

Deno.test({
  name: "example device count: settings problems are reported with everyone else's",
  ...NO_SANITIZERS,
  fn: async () => {
    const error = await startError(started({ DEVICE_COUNT_PER_MINUTE: "0", GRPC_PORT: "x" }));
    assert(error?.message.includes("DEVICE_COUNT_PER_MINUTE"), String(error));
    assert(error?.message.includes("GRPC_PORT"), String(error));
  },
});

Deno.test({
  name: "example device count: an undeclared gRPC service or bus event stops startup",
  ...NO_SANITIZERS,
  fn: async () => {
    const undeclared = {
      ...deviceCountModule,
      grpcServices: ["guardyn.example.v1.Other"],
    };
    const dir = await Deno.makeTempDir({ prefix: "guardyn-example-" });
    try {
      const error = await startError(run([undeclared], dir));
      assertEquals(
        error?.message,
        'service "device-count" registered [guardyn.example.v1.DeviceCountService] but declares [guardyn.example.v1.Other]',
      );
      const publisher = {
        ...deviceCountModule,
        start: async (deps: Parameters<typeof deviceCountModule.start>[0]) => {
          await deps.bus.publish({ kind: "account.deleted", accountId: "a", atMs: 1 });
          return deviceCountModule.start(deps);
        },
      };
      const refused = await startError(run([publisher], dir));
      assertEquals(
        refused?.message,
        'service "device-count" publishes bus event "account.deleted" without declaring it in its module',
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
