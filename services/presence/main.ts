/** The presence service alone (one per pod): `deno run -A services/presence/main.ts`. */

import { servicesNamed } from "../runtime/catalog.ts";
import { main } from "../runtime/runtime.ts";

if (import.meta.main) await main(servicesNamed(["presence"]));
