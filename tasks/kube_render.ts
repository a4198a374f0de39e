/**
 * Renders an overlay of infra/k8s into manifests, exactly as `deno task deploy` applies them:
 * a private copy of infra/k8s receives components/domain/domain.env (DOMAIN from the
 * environment, the one place the domain enters) and a top kustomization that pins every image
 * to a registry and tag; kustomize builds it. Pure helpers produce those two files.
 */

import { parseAllDocuments } from "yaml";
import { ConfigError } from "../services/platform/env.ts";
import { parseConfig } from "../services/runtime/config.ts";
import type { ServiceSpec } from "./kube_catalog.ts";
import { imageName, type Manifest } from "./kube_manifests.ts";
import { type Kustomizer, runChecked } from "./kube_tools.ts";

export const OVERLAYS = ["local", "prod"] as const;
export type Overlay = typeof OVERLAYS[number];

export function parseOverlay(value: string): Overlay {
  if ((OVERLAYS as readonly string[]).includes(value)) return value as Overlay;
  throw new Error(`unknown overlay "${value}": use one of ${OVERLAYS.join(", ")}`);
}

/** The image of the schema migration Job (tasks/migrate.ts compiled). */
export const MIGRATE_IMAGE = "guardyn-migrate";

/**
 * Checks DOMAIN with the services' own rule (services/platform/config.ts), so a value that
 * deploys is a value the services accept. Returns the normalized (lowercase) domain.
 */
export function checkDomain(value: string | undefined): string {
  if (value === undefined || value.trim() === "") {
    throw new Error("DOMAIN is not set: export DOMAIN=<your domain>, e.g. DOMAIN=chat.example.org");
  }
  try {
    return parseConfig({ DOMAIN: value }).domain;
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new Error(error.problems.filter((p) => p.startsWith("DOMAIN")).join("; "));
    }
    throw error;
  }
}

export interface ImageSettings {
  /** Registry (and optional path) the cluster pulls from, e.g. "registry:5000/guardyn". */
  registry: string;
  tag: string;
}

const REGISTRY = /^[a-z0-9]([a-z0-9.-]{0,253}[a-z0-9])?(:[0-9]{1,5})?(\/[a-z0-9._-]{1,128}){0,4}$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export function checkImageSettings(settings: ImageSettings): ImageSettings {
  if (!REGISTRY.test(settings.registry)) {
    throw new Error(
      `image registry ${JSON.stringify(settings.registry)} is not host[:port][/path]`,
    );
  }
  if (!TAG.test(settings.tag)) {
    throw new Error(`image tag ${JSON.stringify(settings.tag)} is not a valid tag`);
  }
  return settings;
}

/** Every image the manifests use: one per service plus the migrate Job's. */
export function imageNames(specs: readonly ServiceSpec[]): string[] {
  return [...specs.map((spec) => imageName(spec.name)), MIGRATE_IMAGE];
}

export function imageRef(name: string, settings: ImageSettings): string {
  return `${settings.registry}/${name}:${settings.tag}`;
}

/** components/domain/domain.env. */
export function domainEnvFile(domain: string): string {
  return `DOMAIN=${checkDomain(domain)}\n`;
}

/** The top kustomization of a render: the overlay plus the image pins. */
export function renderKustomization(
  overlay: Overlay,
  specs: readonly ServiceSpec[],
  images: ImageSettings,
): string {
  checkImageSettings(images);
  const lines = [
    "# Written by the deploy render; not committed.",
    "apiVersion: kustomize.config.k8s.io/v1beta1",
    "kind: Kustomization",
    "resources:",
    `  - ../overlays/${overlay}`,
    "images:",
  ];
  for (const name of imageNames(specs)) {
    lines.push(`  - name: ${name}`);
    lines.push(`    newName: ${images.registry}/${name}`);
    lines.push(`    newTag: "${images.tag}"`);
  }
  return lines.join("\n") + "\n";
}

/** Parses a multi-document YAML stream; a syntax error names the document. */
export function parseManifests(text: string): Manifest[] {
  const manifests: Manifest[] = [];
  for (const [index, doc] of parseAllDocuments(text).entries()) {
    if (doc.errors.length > 0) {
      throw new Error(`rendered document ${index} is not valid YAML: ${doc.errors[0]!.message}`);
    }
    const value = doc.toJS();
    if (value === null || value === undefined) continue;
    if (typeof value !== "object" || Array.isArray(value)) {
      throw new Error(`rendered document ${index} is not a Kubernetes object`);
    }
    manifests.push(value as Manifest);
  }
  return manifests;
}

async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const source = `${from}/${entry.name}`;
    const target = `${to}/${entry.name}`;
    if (entry.isDirectory) await copyTree(source, target);
    else if (entry.isFile) await Deno.copyFile(source, target);
  }
}

export interface RenderRequest {
  repoRoot: string;
  overlay: Overlay;
  domain: string;
  specs: readonly ServiceSpec[];
  images: ImageSettings;
  kustomize: Kustomizer;
}

export interface Rendered {
  /** The YAML stream kustomize produced. */
  yaml: string;
  manifests: Manifest[];
}

/** Renders in a temporary copy (the checkout is never written), then removes the copy. */
export async function renderOverlay(request: RenderRequest): Promise<Rendered> {
  const work = await Deno.makeTempDir({ prefix: "guardyn-render-" });
  try {
    await copyTree(`${request.repoRoot}/infra/k8s`, `${work}/k8s`);
    await Deno.writeTextFile(
      `${work}/k8s/components/domain/domain.env`,
      domainEnvFile(request.domain),
    );
    await Deno.mkdir(`${work}/k8s/render`);
    await Deno.writeTextFile(
      `${work}/k8s/render/kustomization.yaml`,
      renderKustomization(request.overlay, request.specs, request.images),
    );
    const { command, args } = request.kustomize;
    const yaml = await runChecked(command, [...args, `${work}/k8s/render`]);
    return { yaml, manifests: parseManifests(yaml) };
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}
