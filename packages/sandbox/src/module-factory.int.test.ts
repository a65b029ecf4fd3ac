import { build } from 'esbuild';
import { afterAll, describe, expect, test } from 'vitest';
import { isToolExecError } from '@toolplane/core';
import { Sandbox, type ToolSource } from './index.js';
import { toModuleFactory } from './module-factory.js';

/**
 * Tools run from a module factory once converted (issue 14): the module's top level runs again per
 * call, so calls still see nothing of each other; `isolation: "isolate"` keeps one instance per
 * isolate. Every state-carrying channel a module has is tried on the factory path.
 */

const sandbox = new Sandbox({ maxIsolatesPerTool: 1 });
let n = 0;
afterAll(() => sandbox.close());

function tool(code: string, extra: Partial<ToolSource> = {}): ToolSource {
  return { key: `mf${++n}`, code, timeoutMs: 2_000, memoryMb: 32, maxResultBytes: 64 * 1024, ...extra };
}

/** The first call of a tool, checked to have run from its factory. */
async function onFactory(t: ToolSource, args: unknown = {}): Promise<unknown> {
  try {
    return (await sandbox.run(t, args)).value;
  } finally {
    expect(sandbox.runsFromFactory(t.key)).toBe(true);
  }
}

async function failure(t: ToolSource): Promise<{ code: string; message: string }> {
  try {
    await sandbox.run(t, {});
  } catch (err: unknown) {
    if (isToolExecError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('the call succeeded');
}

describe('conversion', () => {
  test('a module becomes a factory with a map back to its code', async () => {
    const factory = await toModuleFactory('export default (a) => a;');
    expect(factory?.code).toMatch(/^\(\(\) => \{/);
    // The tool's code and the two-line entry that takes its default export.
    expect(JSON.parse(factory!.map).sources).toEqual(['toolplane:tool.js', 'entry.js']);
    // No exports object of getters is built per call: the default is taken as it is.
    expect(factory!.code).not.toMatch(/defineProperty|__export|__toCommonJS/);
  });

  test.each([
    ['top-level await', 'await 0; export default () => 1'],
    ['a static import', "import x from 'y'; export default () => x"],
    ['a data: URL import', "import x from 'data:text/javascript,export default 1'; export default () => x"],
    ['a literal dynamic import', "export default () => import('y')"],
    ['a syntax error', 'export default () => {'],
    ['an attempt to close the wrapper', "}); globalThis.leak = 1; (() => {\nexport default () => 1"],
    ['no default export', 'export const run = () => 1'],
    ['an import of the entry it is converted from', "import x from 'toolplane:tool'; export default () => x"],
  ])('%s keeps the per-call module path', async (_name, code) => {
    expect(await toModuleFactory(code)).toBeUndefined();
  });
});

describe('fresh instance per call (the default)', () => {
  test.each([
    ['a top-level counter', 'let n = 0; export default () => ++n', 1],
    ['a top-level Map', 'const m = new Map(); export default (a) => m.set(a.k, 1).size', 1],
    ['a property on the default export', 'const f = () => (f.n = (f.n ?? 0) + 1); export default f', 1],
    ['a class static field', 'class A { static n = 0 } export default () => ++A.n', 1],
    ['an exported object', 'export const box = { n: 0 }; export default () => ++box.n', 1],
    ['a closure cached in an exported let', 'export let seen = []; export default (a) => { seen.push(a.k); return seen.length }', 1],
    ['module-only names', 'export default () => [typeof module, typeof exports, typeof require, typeof arguments, typeof __toolplane_exports].join()', 'undefined,undefined,undefined,undefined,undefined'],
    ['top-level this', 'const t = this; export default () => String(t)', 'undefined'],
  ])('%s does not carry over', async (_name, code, expected) => {
    const t = tool(code);
    expect(await onFactory(t, { k: 1 })).toEqual(expected);
    for (let k = 2; k < 6; k++) expect((await sandbox.run(t, { k })).value).toEqual(expected);
  });

  test('require stays unavailable', async () => {
    const t = tool("export default () => require('fs')");
    await onFactory(t).catch(() => undefined);
    expect(await failure(t)).toMatchObject({ code: 'TOOL_ERROR', message: expect.stringMatching(/TypeError/) });
  });

  test('the global object cannot carry state', async () => {
    const t = tool('export default () => { globalThis.leak = 1; return 1 }');
    await onFactory(t).catch(() => undefined);
    expect(await failure(t)).toMatchObject({ code: 'TOOL_ERROR', message: expect.stringMatching(/not extensible/) });
  });

  test('a promise left running by one call changes nothing the next call sees', async () => {
    const t = tool('let n = 0; export default async () => { Promise.resolve().then(() => { n += 100 }); return ++n }');
    expect(await onFactory(t)).toBe(1);
    expect((await sandbox.run(t, {})).value).toBe(1);
  });

  test('top-level errors and their stacks read as in the module', async () => {
    const top = tool("throw new TypeError('at the top'); export default () => 1");
    await onFactory(top).catch(() => undefined);
    expect(await failure(top)).toMatchObject({ code: 'TOOL_ERROR', message: 'TypeError: at the top' });

    const code = '\n\nexport default function () {\n  const x = 1;\n  throw new Error("boom " + x);\n}';
    const thrower = tool(code);
    await onFactory(thrower).catch(() => undefined);
    const stacks: string[] = [];
    for (const t of [thrower, tool(`await 0;${code}`)]) {
      try {
        await sandbox.run(t, {});
      } catch (err: unknown) {
        stacks.push(String((err as { stack?: unknown }).stack));
      }
    }
    // Same line and column as the module path (the second tool, with top-level await, has no factory).
    expect(stacks[0]).toMatch(/tool:mf\d+:5:9/);
    expect(stacks[1]).toMatch(/tool:mf\d+:5:9/);
  });

  test("a bundled tool's error points at its TypeScript line through both maps", async () => {
    const ts = 'type A = { n: number };\n\nexport default function (a: A): number {\n  if (a.n > 0) throw new Error("too big");\n  return a.n;\n}\n';
    const out = await build({ stdin: { contents: ts, loader: 'ts', sourcefile: 'tools/check.ts' }, bundle: true, write: false, format: 'esm', sourcemap: 'external', outfile: 'o.js' });
    const t = tool(out.outputFiles.find((f) => f.path.endsWith('.js'))!.text, { sourceMap: out.outputFiles.find((f) => f.path.endsWith('.map'))!.text });
    expect(await onFactory(t, { n: 0 })).toBe(0);
    try {
      await sandbox.run(t, { n: 1 });
      expect.unreachable();
    } catch (err: unknown) {
      expect((err as Error).message).toMatch(/tools\/check\.ts:4:/);
    }
  });
});

describe('isolation: "isolate"', () => {
  test('an isolate keeps its instance between calls of the tool', async () => {
    const t = tool('let n = 0; export default () => ++n', { isolation: 'isolate' });
    expect(await onFactory(t)).toBe(1);
    expect((await sandbox.run(t, {})).value).toBe(2);
    expect((await sandbox.run(t, {})).value).toBe(3);
  });

  test('another tool never sees the instance', async () => {
    const a = tool('export const box = { secret: "a" }; export default () => box.secret', { isolation: 'isolate' });
    const b = tool('export default () => typeof box', { isolation: 'isolate' });
    expect(await onFactory(a)).toBe('a');
    expect(await onFactory(b)).toBe('undefined');
  });

  test('a module without a factory runs fresh', async () => {
    const t = tool('await 0; let n = 0; export default () => ++n', { isolation: 'isolate' });
    for (let i = 0; i < 3; i++) expect((await sandbox.run(t, {})).value).toBe(1);
    expect(sandbox.runsFromFactory(t.key)).toBe(false);
  });
});
