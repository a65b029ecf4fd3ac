import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Output } from '../output.js';
import { CliError } from './cli-error.js';

/** This package's directory (`dist/commands/init.js` → two levels up). */
const CLI_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Where the new project gets `@toolplane/cli` and `@toolplane/sdk`: this checkout's packages, linked
 * with `file:` (npm symlinks them), so `npx toolplane` works without a registry publish.
 */
function dependencySpecs(): { cli: string; sdk: string; zod: string } {
  const sdkDir = resolve(CLI_DIR, '..', 'sdk');
  if (!existsSync(join(sdkDir, 'package.json'))) {
    throw new CliError('NO_SDK', `@toolplane/sdk is not next to this CLI (${sdkDir}): run init from a Toolplane checkout (pnpm toolplane init DIR)`);
  }
  let zod = '^4.6.7';
  try {
    zod = `^${(JSON.parse(readFileSync(join(sdkDir, 'node_modules', 'zod', 'package.json'), 'utf8')) as { version: string }).version}`;
  } catch {
    // the SDK's own zod is not installed: the default range fits it
  }
  return { cli: `file:${CLI_DIR}`, sdk: `file:${sdkDir}`, zod };
}

/** `toolplane init DIR`: a new tools project (package.json, tsconfig, tools/hello.ts and its test). */
export function init(cwd: string, out: Output, dirArg: string | undefined, force: boolean): void {
  if (!dirArg) throw new CliError('USAGE', 'say where: toolplane init DIR', 2);
  const dir = resolve(cwd, dirArg);
  if (existsSync(dir) && readdirSync(dir).length > 0 && !force) {
    throw new CliError('NOT_EMPTY', `${dir} is not empty: pick a new directory, or pass --force to write the starter files into it`, 2);
  }
  const deps = dependencySpecs();
  const files: Record<string, string> = {
    'package.json': `${JSON.stringify(
      {
        name: basename(dir).toLowerCase().replace(/[^a-z0-9-]/g, '-'),
        private: true,
        type: 'module',
        scripts: { dev: 'toolplane dev', deploy: 'toolplane deploy', test: 'toolplane test' },
        dependencies: { '@toolplane/sdk': deps.sdk, zod: deps.zod },
        devDependencies: { '@toolplane/cli': deps.cli },
      },
      null,
      2,
    )}\n`,
    'tsconfig.json': `${JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2023',
          // The sandbox's globals are the web's (fetch, URL, crypto, …), not Node's.
          lib: ['ES2023', 'DOM'],
          types: [],
          module: 'ESNext',
          moduleResolution: 'Bundler',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
        },
        include: ['tools'],
      },
      null,
      2,
    )}\n`,
    '.gitignore': 'node_modules/\n',
    'tools/hello.ts': HELLO,
    'tools/hello.test.ts': HELLO_TEST,
  };
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  out.result(
    `created ${dir}: ${Object.keys(files).join(', ')}\nnext:\n  cd ${dirArg} && npm install\n  npx toolplane test                      # runs tools/*.test.ts in the sandbox, locally\n  export TOOLPLANE_URL=http://127.0.0.1:8080 TOOLPLANE_KEY=…   # the key \`make up\` prints\n  npx toolplane dev                       # registers tools/ and re-registers on every save`,
    { dir, files: Object.keys(files) },
  );
}

const HELLO = `import { defineTool } from '@toolplane/sdk';
// A namespace import keeps the bundle small: esbuild drops the parts of zod a tool does not use.
import * as z from 'zod';

export default defineTool({
  name: 'hello',
  description: 'Greets someone by name',
  parameters: z.object({ name: z.string().describe('Who to greet') }),
  run: async ({ name }, ctx) => {
    ctx.log('greeting', name);
    return \`Hello, \${name}!\`;
  },
});
`;

const HELLO_TEST = `import { expect, runTool, test } from '@toolplane/cli/testing';

test('hello greets by name', async () => {
  const { value, logs } = await runTool(new URL('./hello.ts', import.meta.url), { name: 'Ada' });
  expect(value).toBe('Hello, Ada!');
  expect(logs.join('\\n')).toContain('greeting Ada');
});
`;
