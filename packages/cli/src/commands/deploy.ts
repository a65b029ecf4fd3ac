import { formatBytes } from '../bundle.js';
import type { PlannerApi } from '../api.js';
import type { BuiltTool } from '../describe.js';
import type { Output } from '../output.js';
import { buildProject } from '../project.js';
import { CliError } from './cli-error.js';

/** One tool after a deploy: its version now, and whether this deploy made it. */
export type Deployed = { name: string; version: number; changed: boolean; file: string; bytes: number };

/** Registers the tools whose body differs from the registered version; the rest are left as they are. */
export async function registerChanged(api: PlannerApi, tools: BuiltTool[]): Promise<Deployed[]> {
  const out: Deployed[] = [];
  for (const tool of tools) {
    const current = await api.getTool(tool.name);
    if (current && current.code === tool.spec.code) {
      out.push({ name: tool.name, version: current.version, changed: false, file: tool.file, bytes: tool.bytes });
      continue;
    }
    const registered = await api.putTool(tool.name, tool.spec);
    out.push({ name: tool.name, version: registered.version, changed: true, file: tool.file, bytes: tool.bytes });
  }
  return out;
}

export function deployedLine(d: Deployed): string {
  return `${d.name}@${d.version}  ${d.changed ? 'deployed' : 'unchanged'}  ${formatBytes(d.bytes)}  ${d.file}`;
}

/** `toolplane deploy`: bundles every tool under tools/ and registers what changed; nothing if one fails to build. */
export async function deploy(root: string, api: PlannerApi, out: Output): Promise<void> {
  out.progress(`bundling tools in ${root}/tools …`);
  const { built, failures } = await buildProject(root, (t) => out.progress(`  built ${t.file} → ${t.name} (${formatBytes(t.bytes)})`));
  if (failures.length > 0) {
    throw new CliError('BUILD_FAILED', `${failures.map((f) => f.message).join('\n')}\nnothing was deployed: fix the errors above and run \`toolplane deploy\` again`);
  }
  if (built.length === 0) throw new CliError('NO_TOOLS', `no tools in ${root}/tools: add a file there (see tools/hello.ts of \`toolplane init\`)`);
  out.progress(`registering on ${api.url} …`);
  const deployed = await registerChanged(api, built);
  out.result(deployed.map(deployedLine).join('\n'), deployed);
}
