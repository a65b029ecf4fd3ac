import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Sandbox } from '@toolplane/sandbox';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BundleError, MAX_BUNDLE_BYTES, bundleTool } from './bundle.js';
import { describeTool } from './describe.js';
import { parseCallArgs } from './commands/registry.js';

// Real esbuild and a real sandbox, on small projects written to a temp dir: the SDK is linked in
// as `toolplane init` links it, and fake npm packages stand for what authors install.
const SDK = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'sdk');
let root: string;
const sandbox = new Sandbox();

function write(path: string, text: string): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
}

function pkg(name: string, main: string, files: Record<string, string>): void {
  write(`node_modules/${name}/package.json`, JSON.stringify({ name, version: '1.0.0', main }));
  for (const [file, text] of Object.entries(files)) write(`node_modules/${name}/${file}`, text);
}

const tool = (body: string, head = '') => `${head}
import { defineTool } from '@toolplane/sdk';
export default defineTool({
  name: 't',
  description: 'test tool',
  parameters: { type: 'object', properties: {} },
  run: (args, ctx) => { ${body} },
});
`;

async function failure(file: string): Promise<string> {
  const err = await bundleTool(root, file).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BundleError);
  return (err as BundleError).message;
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'toolplane-bundle-'));
  write('package.json', JSON.stringify({ name: 'p', type: 'module' }));
  mkdirSync(join(root, 'node_modules', '@toolplane'), { recursive: true });
  symlinkSync(SDK, join(root, 'node_modules', '@toolplane', 'sdk'));
  symlinkSync(join(SDK, 'node_modules', 'zod'), join(root, 'node_modules', 'zod'));
});
afterAll(async () => {
  await sandbox.close();
  rmSync(root, { recursive: true, force: true });
});

describe('refused at build time, naming the file and the import', () => {
  test('node: built-ins', async () => {
    write('tools/fs.ts', tool(`return readFileSync('/etc/passwd', 'utf8');`, `import { readFileSync } from 'node:fs';`));
    expect(await failure('tools/fs.ts')).toMatch(/^tools\/fs\.ts:1:\d+: 'node:fs' is a Node built-in, which tool code cannot use/);
  });

  test('a bare built-in inside a dependency names the dependency file', async () => {
    pkg('uses-child-process', 'index.js', { 'index.js': `const cp = require('child_process');\nmodule.exports = () => cp.execSync('id');\n` });
    write('tools/cp.ts', tool('return run();', `import run from 'uses-child-process';`));
    expect(await failure('tools/cp.ts')).toMatch(/^node_modules\/uses-child-process\/index\.js:1:\d+: 'child_process' is a Node built-in/);
  });

  test('a built-in a package maps away for browsers is fine', async () => {
    write('node_modules/browser-safe/package.json', JSON.stringify({ name: 'browser-safe', main: 'index.js', browser: { fs: false } }));
    write('node_modules/browser-safe/index.js', `const fs = require('fs');\nmodule.exports = () => typeof fs;\n`);
    write('tools/safe.ts', tool('return kind();', `import kind from 'browser-safe';`));
    const built = await describeTool(await bundleTool(root, 'tools/safe.ts'));
    expect(built.name).toBe('t');
  });

  test('native addons', async () => {
    pkg('native-thing', 'index.js', { 'index.js': `module.exports = require('./build/Release/thing.node');\n`, 'build/Release/thing.node': 'ELF' });
    write('tools/native.ts', tool('return native;', `import native from 'native-thing';`));
    expect(await failure('tools/native.ts')).toMatch(/^node_modules\/native-thing\/index\.js:1:\d+: '\.\/build\/Release\/thing\.node' is a native addon/);
  });

  test('require and import() of a computed name', async () => {
    pkg('plugin-loader', 'index.js', { 'index.js': `module.exports = (name) => require('./plugins/' + name);\n` });
    write('tools/dyn.ts', tool(`return load(String(args));`, `import load from 'plugin-loader';`));
    expect(await failure('tools/dyn.ts')).toMatch(/^node_modules\/plugin-loader\/index\.js:1:\d+: .*require/);
    write('tools/dynimport.ts', tool(`return import(String(args));`));
    expect(await failure('tools/dynimport.ts')).toMatch(/^tools\/dynimport\.ts:\d+:\d+: .*import/i);
  });

  test('a missing tool file or package says so', async () => {
    write('tools/missing-dep.ts', tool('return x;', `import x from 'not-installed';`));
    expect(await failure('tools/missing-dep.ts')).toMatch(/^tools\/missing-dep\.ts:1:\d+: Could not resolve "not-installed"/);
  });
});

describe('what a bundle holds', () => {
  test('npm dependencies end up inside one module with no imports, and the size is capped', async () => {
    pkg('left-pad-ish', 'index.js', { 'index.js': `module.exports = (s, n) => String(s).padStart(n, '.');\n` });
    write('tools/pad.ts', tool(`return pad('x', 4);`, `import pad from 'left-pad-ish';`));
    const bundle = await bundleTool(root, 'tools/pad.ts');
    expect(bundle.code).not.toMatch(/^\s*import\s/m);
    expect(bundle.bytes).toBe(Buffer.byteLength(bundle.code));
    const { value } = await sandbox.run({ key: 'pad@1', code: bundle.code, timeoutMs: 2000, memoryMb: 32, maxResultBytes: 1024 }, {});
    expect(value).toBe('...x');

    pkg('huge', 'index.js', { 'index.js': `module.exports = ${JSON.stringify('x'.repeat(MAX_BUNDLE_BYTES))};\n` });
    write('tools/huge.ts', tool('return huge.length;', `import huge from 'huge';`));
    expect(await failure('tools/huge.ts')).toMatch(/^tools\/huge\.ts: the bundle is \d+\.\d KiB, over the 256\.0 KiB a tool may have\. Largest inputs: node_modules\/huge\/index\.js/);
  });

  test("a failed call's stack points at the TypeScript line through the source map", async () => {
    write('tools/fails.ts', `import { defineTool } from '@toolplane/sdk';

type Order = { id: string; total: number };

export default defineTool({
  name: 'fails',
  description: 'throws',
  parameters: { type: 'object' },
  run: () => {
    const order: Order = { id: 'o1', total: -1 };
    if (order.total < 0) throw new Error('negative total');
    return order;
  },
});
`);
    const built = await describeTool(await bundleTool(root, 'tools/fails.ts'));
    const err = await sandbox
      .run({ key: 'fails@1', code: built.spec.code, sourceMap: built.spec.sourceMap, timeoutMs: 2000, memoryMb: 32, maxResultBytes: 1024 }, {})
      .catch((e: unknown) => e as Error);
    expect(err).toMatchObject({ code: 'TOOL_ERROR' });
    expect((err as Error).message).toContain('negative total');
    expect((err as Error).message).toMatch(/tools\/fails\.ts:11:\d+/);
  });

  test('packages that write a global at load time work, and the write stays in its call', async () => {
    pkg('sets-global', 'index.js', {
      'index.js': `globalThis.__counter = (globalThis.__counter ?? 0) + 1;\nmodule.exports = () => globalThis.__counter;\n`,
    });
    write('tools/global.ts', tool('return count();', `import count from 'sets-global';`));
    const bundle = await bundleTool(root, 'tools/global.ts');
    const run = () => sandbox.run({ key: 'global@1', code: bundle.code, timeoutMs: 2000, memoryMb: 32, maxResultBytes: 1024 }, {});
    expect((await run()).value).toBe(1);
    expect((await run()).value).toBe(1);
  });

  test('the definition is read in the sandbox: zod parameters become JSON Schema, limits and flags are kept', async () => {
    write(
      'tools/def.ts',
      `import { defineTool } from '@toolplane/sdk';
import * as z from 'zod';
export default defineTool({
  name: 'def_tool',
  description: 'has everything',
  parameters: z.object({ q: z.string().min(1) }),
  limits: { timeoutMs: 500, memoryMb: 16 },
  egress: ['api.example.com'],
  secrets: ['TOKEN'],
  requiresApproval: true,
  isolation: 'isolate',
  run: ({ q }) => q,
});
`,
    );
    const built = await describeTool(await bundleTool(root, 'tools/def.ts'));
    expect(built.name).toBe('def_tool');
    expect(built.spec).toMatchObject({
      description: 'has everything',
      parameters: { type: 'object', properties: { q: { type: 'string', minLength: 1 } }, required: ['q'] },
      limits: { timeoutMs: 500, memoryMb: 16 },
      egress: ['api.example.com'],
      secrets: ['TOKEN'],
      requiresApproval: true,
      isolation: 'isolate',
    });
    // Any change to the body changes the code's trailing fingerprint, so deploy sees it.
    expect(built.spec.code).toMatch(/\n\/\/ toolplane-spec: [0-9a-f]{32}\n$/);
  });

  test('a module that is not a defineTool, or a top level that needs Node, is refused with the file named', async () => {
    write('tools/plain.ts', `export default function (args: unknown) { return args; }\n`);
    await expect(describeTool(await bundleTool(root, 'tools/plain.ts'))).rejects.toThrow(/^tools\/plain\.ts: the default export must be `defineTool\(\{ … \}\)`/);
    write('tools/proc.ts', tool('return 1;', `const home = (globalThis as any).process.env.HOME;`));
    await expect(describeTool(await bundleTool(root, 'tools/proc.ts'))).rejects.toThrow(/^tools\/proc\.ts: loading the tool in the sandbox failed: TypeError: .*'env'/);
  });
});

describe('call arguments', () => {
  test('key=value pairs are JSON when they parse, text otherwise; --args is a JSON object', () => {
    expect(parseCallArgs(undefined, ['a=1', 'name=Ada', 'tags=["x"]', 'ok=true', 'eq=a=b'])).toEqual({ a: 1, name: 'Ada', tags: ['x'], ok: true, eq: 'a=b' });
    expect(parseCallArgs('{"a":1}', ['b=2'])).toEqual({ a: 1, b: 2 });
    expect(() => parseCallArgs('[1]', [])).toThrow(/--args must be a JSON object/);
    expect(() => parseCallArgs('{', [])).toThrow(/--args is not JSON/);
    expect(() => parseCallArgs(undefined, ['oops'])).toThrow(/'oops' is not key=value/);
  });
});
