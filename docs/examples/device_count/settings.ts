/** Settings of the example service, from the environment (all problems reported together). */

import type { PlatformConfig } from "../../../services/platform/config.ts";
import type { EnvReader } from "../../../services/platform/env.ts";

export interface DeviceCountSettings {
  /** Count calls per device and minute. */
  countsPerMinute: number;
}

export function readDeviceCountSettings(
  read: EnvReader,
  _platform: PlatformConfig,
): DeviceCountSettings {
  return { countsPerMinute: read.int("DEVICE_COUNT_PER_MINUTE", 30, 1, 10_000) };
}
