import { assertEquals } from "../../../tests/assert.ts";
import { deviceRoom } from "./device_count_rules.ts";

Deno.test("example device count: remaining room never goes below zero", () => {
  assertEquals(deviceRoom(3, 10), { devices: 3, remaining: 7 });
  assertEquals(deviceRoom(12, 10), { devices: 12, remaining: 0 });
});
