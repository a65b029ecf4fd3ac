import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BundleError, bundleTool } from './bundle.js';
import { describeTool, type BuiltTool } from './describe.js';

/** The directory of a project's tools: each file directly in it is one tool; subdirectories hold helpers. */
export const TOOLS_DIR = 'tools';

const TOOL_FILE = /^[^_.][^/]*\.(ts|mts|js|mjs)$/;
const NOT_A_TOOL = /\.(test|spec)\.[mc]?[jt]s$|\.d\.[mc]?ts$/;

/** Whether a file name directly in tools/ is a tool (not a test, a declaration or a `_helper.ts`). */
export function isToolFile(name: string): boolean {
  return TOOL_FILE.test(name) && !NOT_A_TOOL.test(name);
}

/** The tool files of a project (`tools/*.ts`, not tests, not `_helpers.ts`), sorted. */
export function toolFiles(root: string): string[] {
  const dir = join(root, TOOLS_DIR);
  if (!existsSync(dir)) {
    throw new BundleError(TOOLS_DIR, `no ${TOOLS_DIR}/ directory in ${root}: run this in a project made by \`toolplane init\`, or pass --cwd`);
  }
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && isToolFile(e.name))
    .map((e) => `${TOOLS_DIR}/${e.name}`)
    .sort();
}

/** Bundles one tool file and reads its definition. */
export async function buildTool(root: string, file: string): Promise<BuiltTool> {
  return describeTool(await bundleTool(root, file));
}

export type BuildReport = { built: BuiltTool[]; failures: BundleError[] };

/**
 * Builds every tool of the project (or those in `only`). A file that fails is reported and left out; two files naming
 * the same tool both fail, since neither can be told apart from the other on the planner.
 */
export async function buildProject(root: string, onBuilt?: (tool: BuiltTool) => void, only?: ReadonlySet<string>): Promise<BuildReport> {
  const built: BuiltTool[] = [];
  const failures: BundleError[] = [];
  for (const file of toolFiles(root).filter((f) => !only || only.has(f))) {
    try {
      const tool = await buildTool(root, file);
      built.push(tool);
      onBuilt?.(tool);
    } catch (err: unknown) {
      failures.push(err instanceof BundleError ? err : new BundleError(file, `${file}: ${String(err)}`));
    }
  }
  const byName = new Map<string, BuiltTool[]>();
  for (const t of built) byName.set(t.name, [...(byName.get(t.name) ?? []), t]);
  for (const [name, same] of byName) {
    if (same.length < 2) continue;
    for (const t of same) failures.push(new BundleError(t.file, `${t.file}: the tool name '${name}' is also used by ${same.filter((o) => o !== t).map((o) => o.file).join(', ')}`));
  }
  return { built: built.filter((t) => byName.get(t.name)!.length === 1), failures };
}
