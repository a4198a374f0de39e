/** The auth service alone (one per pod): `deno run -A services/auth/main.ts`. */

import { main } from "../platform/runtime.ts";
import { authModule } from "./module.ts";

if (import.meta.main) await main([authModule]);
