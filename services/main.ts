/**
 * All Guardyn services in one process, on the embedded default unless configured otherwise:
 * `deno task dev`. Each service also runs alone from its own `services/<name>/main.ts`.
 */

import { CATALOG } from "./runtime/catalog.ts";
import { main } from "./runtime/runtime.ts";

if (import.meta.main) await main(CATALOG);
