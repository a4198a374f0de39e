/**
 * The service catalog: one line per service. `services/main.ts` runs them all, each
 * `services/<name>/main.ts` runs one by name, and the Kubernetes manifests
 * (`deno task kube-manifests`, tasks/kube_catalog.ts) are generated from it.
 */

import { authModule } from "../auth/module.ts";
import type { AnyServiceModule } from "../kit/service_module.ts";
import { messagingModule } from "../messaging/module.ts";
import { groupsModule } from "../groups/module.ts";
import { mediaModule } from "../media/module.ts";
import { notificationModule } from "../notification/module.ts";
import { presenceModule } from "../presence/module.ts";

export const CATALOG: readonly AnyServiceModule[] = [
  authModule,
  messagingModule,
  groupsModule,
  mediaModule,
  notificationModule,
  presenceModule,
];

/** The catalog's modules of these names, in catalog order; an unknown name is an error. */
export function servicesNamed(names: readonly string[]): AnyServiceModule[] {
  const unknown = names.filter((name) => !CATALOG.some((module) => module.name === name));
  if (unknown.length > 0) {
    throw new Error(
      `unknown service(s): ${unknown.join(", ")} (the catalog has: ${
        CATALOG.map((m) => m.name).join(", ")
      })`,
    );
  }
  return CATALOG.filter((module) => names.includes(module.name));
}
