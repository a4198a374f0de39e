/**
 * A service's settings parsed alone, for its unit tests: the shared configuration and the
 * service's own settings from one environment, with every problem in one ConfigError.
 */

import { parsePlatformConfig } from "../platform/config.ts";
import { type Env, EnvReader } from "../platform/env.ts";
import type { AnyServiceModule } from "./service_module.ts";

export function settingsFromEnv<M extends AnyServiceModule>(
  module: M,
  env: Env,
): ReturnType<M["settings"]> {
  const read = new EnvReader(env);
  const settings = module.settings(read, parsePlatformConfig(read));
  read.throwIfProblems();
  return settings;
}
