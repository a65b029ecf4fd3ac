import { realpathSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Message, type Plugin } from 'esbuild';
import { MAX_SOURCE_MAP_BYTES, MAX_TOOL_CODE_BYTES } from '@toolplane/core';

/** The planner refuses larger code (`MAX_TOOL_CODE_BYTES`), so the bundler stops there first. */
export const MAX_BUNDLE_BYTES = MAX_TOOL_CODE_BYTES;

/** One tool file bundled into the module the planner registers. */
export type ToolBundle = {
  /** The tool file, relative to the project root (`tools/hello.ts`). */
  file: string;
  /** One ES module without imports; its default export runs the tool. */
  code: string;
  /** Source map (v3) of `code`, sources relative to the project root, without their contents. */
  sourceMap: string;
  /** A module whose default export returns the tool's definition without `run` (see `describe.ts`). */
  describeCode: string;
  bytes: number;
};

/** A bundle that cannot be made; `message` names the file, the import and what to do. */
export class BundleError extends Error {
  override readonly name = 'BundleError';
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Bundles `file` (a module whose default export is `defineTool(…)`) and its npm dependencies into one
 * ES module for the sandbox. Refused at build time, naming the file and the import: Node built-ins
 * (`node:fs`, `fs`, …), native addons (`.node`) and `require`/`import()` of computed names — none of
 * them exist in an isolate, and a refusal here beats a `TOOL_ERROR` on the first call.
 */
export async function bundleTool(root: string, file: string): Promise<ToolBundle> {
  const projectRoot = realpathSync(root);
  const rel = relative(projectRoot, resolve(projectRoot, file)).split(sep).join('/');
  const importPath = JSON.stringify(`./${rel}`);
  const [runtime, describe] = await Promise.all([
    bundleEntry(projectRoot, rel, `import tool from ${importPath};\n${RUN_ENTRY}`, true),
    bundleEntry(projectRoot, rel, `import tool from ${importPath};\n${DESCRIBE_ENTRY}`, false),
  ]);
  const bytes = Buffer.byteLength(runtime.code);
  if (bytes > MAX_BUNDLE_BYTES) {
    throw new BundleError(
      rel,
      `${rel}: the bundle is ${formatBytes(bytes)}, over the ${formatBytes(MAX_BUNDLE_BYTES)} a tool may have. Largest inputs: ${runtime.largest}. ` +
        `Import only what the tool uses (e.g. \`import * as z from 'zod'\`, not \`import { z }\`), or pick a smaller package.`,
    );
  }
  if (Buffer.byteLength(runtime.map) > MAX_SOURCE_MAP_BYTES) {
    throw new BundleError(rel, `${rel}: the source map is larger than ${formatBytes(MAX_SOURCE_MAP_BYTES)}; the tool has too many inputs`);
  }
  return { file: rel, code: runtime.code, sourceMap: runtime.map, describeCode: describe.code, bytes };
}

/** See `isolate/global-scope.ts` (compiled next to this file). */
const GLOBAL_SCOPE = fileURLToPath(new URL('./isolate/global-scope.js', import.meta.url));

// The sandbox calls a module's default export with (args, ctx); a `defineTool` object is not callable.
const RUN_ENTRY = `export default function run(args, ctx) { return tool.run(args, ctx); }\n`;
const DESCRIBE_ENTRY = `export default function describe() {
  if (tool === null || typeof tool !== 'object' || tool.toolplane !== 1) return { notATool: typeof tool };
  const { run: _run, toolplane: _marker, ...definition } = tool;
  return definition;
}\n`;

async function bundleEntry(root: string, file: string, contents: string, withMap: boolean): Promise<{ code: string; map: string; largest: string }> {
  const result = await build({
    stdin: { contents, resolveDir: root, sourcefile: '<toolplane entry>', loader: 'js' },
    absWorkingDir: root,
    bundle: true,
    write: false,
    format: 'esm',
    // The sandbox is a web-standard runtime: packages' `worker`/`browser` builds fit it, not their Node ones.
    platform: 'browser',
    conditions: ['worker', 'browser'],
    target: 'es2023',
    // Source paths in the map are relative to this (never written) file: `tools/hello.ts`.
    outfile: `${root}/bundle.js`,
    sourcemap: withMap ? 'external' : false,
    sourcesContent: false,
    // Whitespace and syntax only: identifiers stay, so stack frames keep the functions' names.
    minifyWhitespace: true,
    minifySyntax: true,
    metafile: true,
    logLevel: 'silent',
    logOverride: { 'unsupported-require-call': 'error', 'unsupported-dynamic-import': 'error' },
    inject: [GLOBAL_SCOPE],
    plugins: [refuseHostModules(), dedupeLinkedPackages(root)],
  }).catch((err: unknown) => {
    throw new BundleError(file, describeFailure(file, root, err));
  });
  const js = result.outputFiles.find((f) => f.path.endsWith('.js'));
  const map = result.outputFiles.find((f) => f.path.endsWith('.js.map'));
  const largest = Object.entries(result.metafile.inputs)
    .sort((a, b) => b[1].bytes - a[1].bytes)
    .slice(0, 3)
    .map(([path, input]) => `${path} (${formatBytes(input.bytes)})`)
    .join(', ');
  return { code: js!.text, map: map?.text ?? '', largest };
}

/** Refuses what has no place in an isolate at the import that asks for it. */
function refuseHostModules(): Plugin {
  return {
    name: 'toolplane-refuse-host-modules',
    setup(b) {
      b.onResolve({ filter: /.*/ }, async (args) => {
        if (args.kind === 'entry-point' || args.pluginData === CHECKED) return undefined;
        if (isBuiltin(args.path)) {
          // A package may map a built-in away for browsers (`"browser": {"fs": false}`): that is fine.
          if (!args.path.startsWith('node:')) {
            const mapped = await b.resolve(args.path, { resolveDir: args.resolveDir, importer: args.importer, kind: args.kind, pluginData: CHECKED });
            // Mapped to `false`: esbuild answers the bare name; the module is empty, as in a browser build.
            if (mapped.errors.length === 0) return isAbsolute(mapped.path) ? { path: mapped.path } : { path: args.path, namespace: DISABLED };
          }
          return {
            errors: [
              {
                text: `'${args.path}' is a Node built-in, which tool code cannot use: the sandbox has web APIs instead (fetch, URL, TextEncoder, crypto, setTimeout)`,
              },
            ],
          };
        }
        if (args.path.endsWith('.node')) {
          return { errors: [{ text: `'${args.path}' is a native addon, which cannot run in the sandbox: pick a pure JavaScript package` }] };
        }
        return undefined;
      });
      b.onLoad({ filter: /.*/, namespace: DISABLED }, () => ({ contents: '', loader: 'js' }));
    },
  };
}
const DISABLED = 'toolplane-disabled';

/**
 * A package linked from outside the project (`file:` dependencies such as `@toolplane/sdk`) would
 * bring its own copy of a dependency the project has too (zod): resolve such bare imports from the
 * project first, so the bundle holds one copy.
 */
function dedupeLinkedPackages(root: string): Plugin {
  const inside = (path: string) => path === root || path.startsWith(root + sep);
  return {
    name: 'toolplane-dedupe-linked',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.pluginData === DEDUPE || args.kind === 'entry-point' || !args.importer || inside(args.importer)) return undefined;
        const found = await b.resolve(args.path, { resolveDir: root, kind: args.kind, pluginData: DEDUPE });
        return found.errors.length === 0 ? { path: found.path, ...(found.sideEffects === false ? { sideEffects: false } : {}) } : undefined;
      });
    },
  };
}
const DEDUPE = Symbol('dedupe');
const CHECKED = Symbol('checked');

/** esbuild's messages, one per line: `tools/x.ts:3:20: 'node:fs' is a Node built-in, …`. */
function describeFailure(file: string, root: string, err: unknown): string {
  const messages = (err as { errors?: Message[] }).errors;
  if (!Array.isArray(messages) || messages.length === 0) return `${file}: ${err instanceof Error ? err.message : String(err)}`;
  return messages
    .map((m) => {
      const where = m.location ? `${toProjectPath(root, m.location.file)}:${m.location.line}:${m.location.column + 1}` : file;
      const text = m.location?.file === '<toolplane entry>' ? `${m.text} (does ${file} exist?)` : m.text;
      return `${where}: ${text}`;
    })
    .join('\n');
}

function toProjectPath(root: string, path: string): string {
  if (path === '<toolplane entry>') return path;
  const abs = resolve(root, path);
  const rel = relative(root, abs);
  return rel.startsWith('..') ? abs : rel.split(sep).join('/');
}

/** `12.3 KiB`. */
export function formatBytes(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KiB`;
}
