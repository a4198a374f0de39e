/** The messaging service alone (one per pod): `deno run -A services/messaging/main.ts`. */

import { main } from "../platform/runtime.ts";
import { messagingModule } from "./module.ts";

if (import.meta.main) await main([messagingModule]);
