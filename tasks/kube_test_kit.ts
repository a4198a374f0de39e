/**
 * Shared by the manifest tests: renders an overlay with the real kustomize (once per overlay
 * and domain) and finds kubernetes-validate. Both are installed by infra/tools/install.sh
 * (CI: .ci/install.sh); a missing tool FAILS the tests with the command that installs it.
 */

import { loadCatalog, repoRootFromHere, type ServiceSpec } from "./kube_catalog.ts";
import type { Manifest } from "./kube_manifests.ts";
import { type Overlay, type Rendered, renderOverlay } from "./kube_render.ts";
import { findKustomize, type Kustomizer, pathWhich } from "./kube_tools.ts";

export const ROOT = repoRootFromHere();
export const TEST_DOMAIN = "chat.example.org";
export const TEST_IMAGES = { registry: "registry.test:5000/guardyn", tag: "git-0123456789ab" };

const INSTALL_HINT = "run `bash infra/tools/install.sh` (CI runs it from .ci/install.sh)";

let kustomizer: Promise<Kustomizer> | undefined;

export function kustomize(): Promise<Kustomizer> {
  return kustomizer ??= findKustomize(pathWhich()).then((found) => {
    if (!found) throw new Error(`kustomize (or kubectl) is not installed: ${INSTALL_HINT}`);
    return found;
  });
}

export async function kubernetesValidate(): Promise<string> {
  const path = await pathWhich()("kubernetes-validate");
  if (!path) throw new Error(`kubernetes-validate is not installed: ${INSTALL_HINT}`);
  return path;
}

export function catalog(): Promise<ServiceSpec[]> {
  return Promise.resolve(loadCatalog());
}

const renders = new Map<string, Promise<Rendered>>();

export function render(overlay: Overlay, domain = TEST_DOMAIN): Promise<Rendered> {
  const key = `${overlay}/${domain}`;
  let rendered = renders.get(key);
  if (!rendered) {
    rendered = (async () =>
      renderOverlay({
        repoRoot: ROOT,
        overlay,
        domain,
        specs: await catalog(),
        images: TEST_IMAGES,
        kustomize: await kustomize(),
      }))();
    renders.set(key, rendered);
  }
  return rendered;
}

/** A deep copy to mutate in a negative test. */
export function copy(manifests: readonly Manifest[]): Manifest[] {
  return structuredClone(manifests) as Manifest[];
}
