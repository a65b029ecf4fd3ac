import ivm from 'isolated-vm';
import { LOCKDOWN_SOURCE } from './lockdown.js';
import { installIdleRuntime } from './runtime-source.js';

/** Registration-time checks run in a throwaway isolate with tight limits. */
const CHECK_MEMORY_MB = 16;
/** The CPU time top-level code may use: what a module needs to define its exports, many times over. */
const CHECK_CPU_MS = 200;
/**
 * Wall time for the same, which a busy machine stretches (a wall bound of 200 ms refused valid code
 * under load): still under the fleet's bound on a whole check (`checkTimeoutMs`, 1 s by default),
 * so a slow check is refused here rather than by killing its host.
 */
const CHECK_WALL_MS = 750;
/** How often the CPU time of an evaluating module is looked at. */
const CHECK_CPU_POLL_MS = 10;

/**
 * Checks that `code` is an ES module without imports whose default export is a function, by compiling
 * and evaluating it in a throwaway isolate locked down like the real ones (so top-level code that
 * patches a built-in fails here, not on every call). The code is compiled as given, never spliced
 * into a wrapper. Returns the compiler's or evaluator's message on failure.
 */
export async function checkToolCode(code: string): Promise<{ ok: true } | { ok: false; message: string }> {
  const isolate = new ivm.Isolate({ memoryLimit: CHECK_MEMORY_MB, onCatastrophicError: () => {} });
  try {
    const context = await isolate.createContext();
    // The same runtime and lockdown as a real isolate, so top-level code sees the same globals. No
    // call runs here: fetch and timers refuse outside a call, and nothing is ever waited on.
    await installIdleRuntime(isolate, context);
    await context.eval(LOCKDOWN_SOURCE);
    let module: ivm.Module;
    try {
      module = await isolate.compileModule(code, { filename: 'tool' });
    } catch (err: unknown) {
      return { ok: false, message: `code does not compile as a module: ${messageOf(err)}` };
    }
    if (module.dependencySpecifiers.length > 0) {
      return { ok: false, message: `imports are not allowed in tool code: ${module.dependencySpecifiers.join(', ')}` };
    }
    try {
      await module.instantiate(context, (s) => {
        throw new Error(`import of '${s}' is not allowed`);
      });
      if (await overranCpu(isolate, () => module.evaluate({ timeout: CHECK_WALL_MS }))) {
        return { ok: false, message: `module evaluation failed: top-level code used more than ${CHECK_CPU_MS} ms of CPU time` };
      }
      const kind = module.namespace.getSync('default', { reference: true }).typeof;
      if (kind !== 'function') return { ok: false, message: `the default export must be a function, got ${kind}` };
    } catch (err: unknown) {
      return { ok: false, message: `module evaluation failed: ${messageOf(err)}` };
    }
    return { ok: true };
  } finally {
    if (!isolate.isDisposed) isolate.dispose();
  }
}

/**
 * Runs `evaluate` (on isolated-vm's threads, so this thread stays free to watch) and disposes the
 * isolate once it has used {@link CHECK_CPU_MS} of CPU time. True when that ended it; its other
 * failures are thrown.
 */
async function overranCpu(isolate: ivm.Isolate, evaluate: () => Promise<unknown>): Promise<boolean> {
  const start = isolate.cpuTime;
  let overran = false;
  const watch = setInterval(() => {
    if (isolate.isDisposed || Number(isolate.cpuTime - start) / 1e6 < CHECK_CPU_MS) return;
    overran = true;
    isolate.dispose();
  }, CHECK_CPU_POLL_MS);
  try {
    await evaluate();
    return false;
  } catch (err: unknown) {
    if (overran) return true;
    throw err;
  } finally {
    clearInterval(watch);
  }
}

function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).slice(0, 2000);
}
