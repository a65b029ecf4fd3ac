/**
 * `@toolplane/cli/testing`: test a tool the way it will run, locally, without Redis or a planner.
 * `runTool` bundles the tool file exactly as `toolplane deploy` does and runs it in a real sandbox
 * (isolated-vm, the same runtime, limits and egress rules as a worker). The vitest functions are
 * re-exported, so a project needs no test framework of its own; `toolplane test` runs the files.
 *
 * @example
 * ```ts
 * import { expect, runTool, test } from '@toolplane/cli/testing';
 *
 * test('hello greets', async () => {
 *   const { value } = await runTool(new URL('./hello.ts', import.meta.url), { name: 'Ada' });
 *   expect(value).toBe('Hello, Ada!');
 * });
 * ```
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Sandbox } from '@toolplane/sandbox';
import type { BuiltTool } from '../describe.js';
import { buildTool } from '../project.js';

export { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, test } from 'vitest';

export type RunToolOptions = {
  /** Secrets as `ctx.secrets` (the tool sees only those its definition lists). */
  secrets?: Record<string, string>;
  /** Replaces the tool's `egress` list, e.g. `['127.0.0.1:8080']` for an API the test serves. */
  egress?: string[];
  /**
   * Private ranges fetch may reach, as the operator's `TOOLPLANE_ALLOW_PRIVATE_NETWORKS`; a test's
   * own server on loopback needs `'127.0.0.1'`. @default '' (none, as in production)
   */
  allowPrivateNetworks?: string;
  /** @default `{ id: 'test', attempt: 1 }` */
  call?: { id: string; attempt: number };
};

export type RunToolResult = {
  value: unknown;
  /** The call's log lines (`ctx.log`, `console.*`). */
  logs: string[];
  runMs: number;
  /** What deploy would register, without the code: name, description, parameters, limits, … */
  definition: Omit<BuiltTool['spec'], 'code' | 'sourceMap'> & { name: string };
};

const sandboxes = new Map<string, Sandbox>();
const builds = new Map<string, { mtimeMs: number; tool: Promise<BuiltTool> }>();

/**
 * Runs the tool in `file` once with `args`. Resolves with its result and logs; rejects with the
 * sandbox's error (`code`: `TOOL_ERROR`, `TIMEOUT`, `EGRESS_DENIED`, …), whose stack names the
 * tool's own source lines. Arguments are not checked against the schema here (the planner does that).
 */
export async function runTool(file: string | URL, args: unknown, opts: RunToolOptions = {}): Promise<RunToolResult> {
  const tool = await built(typeof file === 'string' ? file : fileURLToPath(file));
  const { code, sourceMap, ...definition } = tool.spec;
  const limits = { timeoutMs: 10_000, memoryMb: 64, maxResultBytes: 1024 * 1024, ...definition.limits };
  const sandbox = sandboxFor(opts.allowPrivateNetworks ?? '');
  const granted = Object.fromEntries(Object.entries(opts.secrets ?? {}).filter(([k]) => definition.secrets?.includes(k)));
  const egress = opts.egress ?? definition.egress ?? [];
  // The sandbox keeps a tool's egress rules with its isolates, per key: the key changes with them.
  const key = `${tool.name}@test-${createHash('sha256').update(JSON.stringify([code, egress, limits])).digest('hex').slice(0, 16)}`;
  const { value, logs, runMs } = await sandbox.run(
    { key, code, sourceMap, egress, ...limits },
    args,
    { secrets: granted, call: opts.call ?? { id: 'test', attempt: 1 } },
  );
  return { value, logs, runMs, definition: { name: tool.name, ...definition } };
}

/** The tool's registration without running it (name, parameters as JSON Schema, limits, …). */
export async function defineOf(file: string | URL): Promise<RunToolResult['definition']> {
  const tool = await built(typeof file === 'string' ? file : fileURLToPath(file));
  const { code: _code, sourceMap: _map, ...definition } = tool.spec;
  return { name: tool.name, ...definition };
}

function built(path: string): Promise<BuiltTool> {
  const mtimeMs = statSync(path).mtimeMs;
  const cached = builds.get(path);
  if (cached && cached.mtimeMs === mtimeMs) return cached.tool;
  const tool = buildTool(projectRoot(path), path);
  builds.set(path, { mtimeMs, tool });
  return tool;
}

/** The nearest directory above the tool file with a package.json: where its dependencies resolve from. */
function projectRoot(file: string): string {
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return dirname(file);
  }
}

function sandboxFor(allowPrivateNetworks: string): Sandbox {
  let s = sandboxes.get(allowPrivateNetworks);
  if (!s) sandboxes.set(allowPrivateNetworks, (s = new Sandbox({ allowPrivateNetworks, maxIsolatesPerTool: 2 })));
  return s;
}
