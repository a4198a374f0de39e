/**
 * All Guardyn services in one process, on the embedded default unless configured otherwise:
 * `deno task dev`. Each service also runs alone from its own `services/<name>/main.ts`.
 */

import { authModule } from "./auth/module.ts";
import { messagingModule } from "./messaging/module.ts";
import { main, type ServiceModule } from "./platform/runtime.ts";

/** Every service of the product; later services add themselves here. */
export const ALL_SERVICES: readonly ServiceModule[] = [authModule, messagingModule];

if (import.meta.main) await main(ALL_SERVICES);
