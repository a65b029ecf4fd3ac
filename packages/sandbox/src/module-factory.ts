import { randomBytes } from 'node:crypto';
import { build, type Plugin } from 'esbuild';

/**
 * A tool module turned into a function whose body is the module's top level: compiled once per
 * isolate, called once per call, so each call still gets fresh module state (its own `let`s,
 * closures and exports) without recompiling and re-instantiating a module (≈ 2 µs against ≈ 30 µs
 * a call, measured with isolated-vm 7.0.1). `map` maps positions in `code` back to the tool's code.
 */
export type ModuleFactory = { code: string; map: string };

/**
 * esbuild bundles a two-line entry that imports the tool's default export and stores it, printed as
 * an IIFE; the factory is an arrow function around that statement, so calling it evaluates the
 * module's top level anew and returns `{ default }` fresh. Importing only the default lets esbuild
 * hoist the module's bindings instead of building an exports object of getters (`__export`,
 * `__toCommonJS`: three `Object.defineProperty` calls per call, ~2.5 µs of the isolate's ~1 µs
 * otherwise); the value is read once the top level has run, as the runner reads it. The arrow takes
 * no parameters and binds no `arguments`: tool code sees no name it would not see in a module. The
 * one name the factory adds is drawn at random per conversion, so tool code cannot name it. The
 * banner and footer go around esbuild's re-printed output, never around the tool's text: esbuild
 * parses the whole module first, so what it prints is one complete statement list, valid in a
 * function body (ES modules have no top-level `return`, and the ones with top-level `await` are
 * refused below); the compiled result is checked to be a function before it is used. A module
 * without a default export does not convert (esbuild refuses the import): it keeps the per-call
 * module path, which reports it.
 */
const TOOL = 'toolplane:tool';
/** A transform that takes longer than this is given up: the tool keeps the per-call module path. */
const TRANSFORM_TIMEOUT_MS = 2_000;

/**
 * The entry's one import is the tool's code; tool code may import nothing (the module path refuses
 * imports too): any other import ends the transform.
 */
function toolOnly(code: string): Plugin {
  return {
    name: 'toolplane-tool-only',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) =>
        args.path === TOOL && args.namespace !== 'toolplane' ? { path: 'tool.js', namespace: 'toolplane' } : { errors: [{ text: `import of '${args.path}'` }] },
      );
      b.onLoad({ filter: /.*/, namespace: 'toolplane' }, () => ({ contents: code, loader: 'js' }));
    },
  };
}

/**
 * Converts a tool's ES module into a {@link ModuleFactory} with esbuild, or answers undefined when
 * it cannot be converted faithfully (top-level `await`, imports, a syntax error, a transform that
 * hangs): such a tool keeps running as a module compiled per call, which reports its errors as today.
 * Semantics are kept: no tree shaking, `@__PURE__` annotations ignored, strict mode as in a module.
 */
export async function toModuleFactory(code: string): Promise<ModuleFactory | undefined> {
  const result = `__toolplane_default_${randomBytes(12).toString('hex')}`;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), TRANSFORM_TIMEOUT_MS);
    timer.unref();
  });
  const transform = build({
    stdin: { contents: `import tool from '${TOOL}';\n${result} = { default: tool };`, loader: 'js', sourcefile: 'entry.js' },
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'neutral',
    target: 'esnext',
    // A free name a module does not have: esbuild would bind it to its shim.
    define: { require: 'undefined' },
    treeShaking: false,
    ignoreAnnotations: true,
    sourcemap: 'external',
    sourcesContent: false,
    outfile: 'tool.factory.js',
    banner: { js: `(() => { 'use strict'; let ${result};` },
    footer: { js: `return ${result}; })` },
    legalComments: 'none',
    logLevel: 'silent',
    plugins: [toolOnly(code)],
  }).then(
    (built): ModuleFactory | undefined => {
      const out = built.outputFiles.find((f) => f.path.endsWith('.js'));
      const map = built.outputFiles.find((f) => f.path.endsWith('.map'));
      return out && map ? { code: out.text, map: map.text } : undefined;
    },
    () => undefined,
  );
  try {
    return await Promise.race([transform, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
