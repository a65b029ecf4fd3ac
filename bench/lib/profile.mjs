// Reads a V8 .cpuprofile (from `node --cpu-prof`) and says where the time went: self time by
// function and by package, per call processed.
import { readFileSync } from 'node:fs';

/** Which package or part of the runtime a script URL belongs to. */
function packageOf(url, functionName) {
  if (!url) {
    if (functionName === '(garbage collector)') return 'gc';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return 'program (native, not JS)';
    return 'native';
  }
  const pnpm = /node_modules\/\.pnpm\/[^/]+\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pnpm) return pnpm[1];
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nm) return nm[1];
  const own = /\/(packages|services)\/([^/]+)\//.exec(url);
  if (own) return `@toolplane/${own[2]}`;
  if (url.startsWith('node:')) return 'node core';
  return url.split('/').at(-1);
}

/**
 * Self time per function and per package. `calls` divides totals into µs per call.
 * Returns rows sorted by self time, largest first.
 */
export function summarizeProfile(file, calls, top = 15) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  // timeDeltas[i] is the time from sample i-1 to sample i: attribute it to sample i's node.
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const fn = new Map();
  const pkg = new Map();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id).callFrame;
    const p = packageOf(url, functionName);
    // Idle samples are the event loop waiting: not a cost of the calls.
    if (p === 'idle') continue;
    busyUs += us;
    const name = `${functionName || '(anonymous)'} ${p}${url ? `:${lineNumber + 1}` : ''}`;
    fn.set(name, (fn.get(name) ?? 0) + us);
    pkg.set(p, (pkg.get(p) ?? 0) + us);
  }
  const rows = (m) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, share: Math.round((us / busyUs) * 1000) / 10, us_per_call: Math.round((us / calls) * 10) / 10 }));
  return { busy_us_per_call: Math.round((busyUs / calls) * 10) / 10, by_package: rows(pkg), by_function: rows(fn) };
}
