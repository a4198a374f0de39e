import { assert, assertEquals } from "../../tests/assert.ts";
import { EnvReader } from "../platform/env.ts";
import { readPresenceSettings } from "./settings.ts";

Deno.test("presence settings: defaults, and a heartbeat too slow for the window is refused", () => {
  const defaults = new EnvReader({});
  assertEquals(readPresenceSettings(defaults), {
    onlineWindowMs: 90_000,
    heartbeatIntervalMs: 30_000,
    grantsMax: 10_000,
    maxWatches: 20_000,
    watchesPerDevice: 4,
    coalesceMs: 50,
    updatesPerMinute: 30,
  });
  assertEquals(defaults.problems, []);
  const bad = new EnvReader({
    PRESENCE_ONLINE_WINDOW_MS: "10000",
    PRESENCE_HEARTBEAT_INTERVAL_MS: "6000",
  });
  readPresenceSettings(bad);
  assert(bad.problems.some((p) => p.includes("under half")), bad.problems.join("; "));
});
