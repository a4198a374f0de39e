/**
 * `deno task layers` (part of `deno task ok`): reads every TypeScript file of the repository and
 * fails when an import breaks a layer rule (tasks/layer_rules.ts). Each line names the file, the
 * import and the rule.
 */

import { checkLayers, importsOf, type SourceFile } from "./layer_rules.ts";
import { repoRootFromHere } from "./kube_catalog.ts";

const ROOTS = ["crypto", "client", "services", "tasks", "tests", "docs/examples"];

export async function readSources(root: string): Promise<SourceFile[]> {
  const files: SourceFile[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(`${root}/${dir}`)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile && path.endsWith(".ts")) {
        const code = await Deno.readTextFile(`${root}/${path}`);
        files.push({ path, imports: importsOf(code), code });
      }
    }
  };
  for (const dir of ROOTS) await walk(dir);
  return files;
}

if (import.meta.main) {
  const files = await readSources(repoRootFromHere());
  const violations = checkLayers(files);
  for (const v of violations) {
    console.error(`layers: ${v.file} imports ${v.target}: ${v.rule}: ${v.message}`);
  }
  if (violations.length > 0) {
    console.error(`layers: ${violations.length} violation(s) in ${files.length} files`);
    Deno.exit(1);
  }
  console.log(`layers: ${files.length} files, every import follows the layer rules`);
}
