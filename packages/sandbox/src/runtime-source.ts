import { readFileSync } from 'node:fs';
import ivm from 'isolated-vm';
import { hostCrypto } from './bridges/crypto-bridge.js';

/**
 * The in-isolate runtime (`isolate/runner.ts` and `isolate/web/*`), bundled by the build into
 * `dist/isolate-runtime.js`. Both `src/` and `dist/` sit one level below the package, so the same
 * relative path finds it from the sources (tests) and from the build.
 */
const RUNTIME_FILE = new URL('../dist/isolate-runtime.js', import.meta.url);

let source: string | undefined;
/** V8's code cache of the runtime, shared by every isolate of this process. */
let cache: ivm.ExternalCopy<ArrayBuffer> | undefined;

/** The runtime's text: a script whose value is its `boot` function. */
export function runtimeSource(): string {
  if (source === undefined) {
    try {
      source = readFileSync(RUNTIME_FILE, 'utf8');
    } catch (err: unknown) {
      throw new Error(`the sandbox runtime ${RUNTIME_FILE.pathname} is missing: run \`pnpm build\``, { cause: err });
    }
  }
  return source;
}

/**
 * Evaluates the runtime in a fresh context (compiled from the shared code cache after the first
 * time) and returns a Reference to its `boot`; nothing is installed until the host applies it.
 */
export async function loadRuntime(isolate: ivm.Isolate, context: ivm.Context): Promise<ivm.Reference<(...args: unknown[]) => unknown>> {
  const script = isolate.compileScriptSync(runtimeSource(), {
    filename: 'isolate-runtime',
    ...(cache ? { cachedData: cache } : { produceCachedData: true }),
  });
  const produced = (script as { cachedData?: ivm.ExternalCopy<ArrayBuffer> }).cachedData;
  if (!cache && produced) cache = produced;
  try {
    return (await script.run(context, { reference: true })) as ivm.Reference<(...args: unknown[]) => unknown>;
  } finally {
    script.release();
  }
}

/**
 * Installs the runtime with no call ever running (registration checks, the lockdown survey): fetch
 * and timers refuse outside a call and nothing is waited on; `crypto` works as in a call.
 */
export async function installIdleRuntime(isolate: ivm.Isolate, context: ivm.Context): Promise<void> {
  const boot = await loadRuntime(isolate, context);
  const idle = new ivm.Reference(() => '{"stale":true}');
  const limits = new ivm.ExternalCopy({ maxUrlLength: 0, maxRequestBodyBytes: 0 }).copyInto();
  await boot.apply(undefined, [idle, idle, idle, new ivm.Reference(hostCrypto), limits]);
  boot.release();
}
