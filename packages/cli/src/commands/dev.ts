import { watch } from 'node:fs';
import { join } from 'node:path';
import type { CallView, PlannerApi } from '../api.js';
import type { Output } from '../output.js';
import { buildProject, TOOLS_DIR } from '../project.js';
import { deployedLine, registerChanged } from './deploy.js';

/** Saves come in bursts (editors write a file in several steps). */
const DEBOUNCE_MS = 80;
/** How often the calls of the project's tools are read for their logs. */
const LOG_POLL_MS = 500;

/**
 * `toolplane dev`: registers the project's tools, then rebuilds on every save under tools/ and
 * registers what changed. A file that fails to build is reported and its tool keeps its last good
 * version. Each finished call of the project's tools is printed with its logs. Runs until `signal`.
 */
export async function dev(root: string, api: PlannerApi, out: Output, signal: AbortSignal): Promise<void> {
  const startedAt = Date.now();
  /** Tool name per file, from the last good build: names the version a broken file keeps. */
  const lastGood = new Map<string, { name: string; version: number }>();
  let running: Promise<void> | undefined;
  let again = false;

  const sync = async (reason: string) => {
    const t0 = performance.now();
    try {
      const { built, failures } = await buildProject(root);
      for (const f of failures) {
        const kept = lastGood.get(f.file);
        out.error(`✗ ${f.message}\n  ${kept ? `${kept.name}@${kept.version} stays current` : 'not registered'}; fix it and save again`);
      }
      const deployed = await registerChanged(api, built);
      for (const d of deployed) {
        lastGood.set(d.file, { name: d.name, version: d.version });
        if (d.changed || reason === 'start') out.result(`${deployedLine(d)}  (${Math.round(performance.now() - t0)} ms)`, { event: 'deployed', ...d });
      }
    } catch (err: unknown) {
      out.error(`✗ ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const schedule = (reason: string) => {
    if (running) {
      again = true;
      return;
    }
    running = sync(reason).finally(() => {
      running = undefined;
      if (again && !signal.aborted) {
        again = false;
        schedule('change');
      }
    });
  };

  // Watching starts before the first build, so a save made while it runs is not missed.
  let timer: NodeJS.Timeout | undefined;
  const watcher = watch(join(root, TOOLS_DIR), { recursive: true }, () => {
    clearTimeout(timer);
    timer = setTimeout(() => schedule('change'), DEBOUNCE_MS);
  });
  out.progress(`watching ${join(root, TOOLS_DIR)} → ${api.url} (Ctrl-C stops)`);
  schedule('start');

  const seen = new Set<string>();
  const poll = setInterval(() => {
    void printFinishedCalls(api, out, [...new Set([...lastGood.values()].map((t) => t.name))], startedAt, seen);
  }, LOG_POLL_MS);

  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
  clearInterval(poll);
  clearTimeout(timer);
  watcher.close();
  await running;
}

const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);

async function printFinishedCalls(api: PlannerApi, out: Output, names: string[], since: number, seen: Set<string>): Promise<void> {
  for (const name of names) {
    let list: CallView[];
    try {
      list = await api.listCalls(name, { since, limit: 50 });
    } catch {
      continue; // the planner restarting is not the developer's error; the next poll tries again
    }
    for (const c of list.reverse()) {
      if (seen.has(c.id) || !FINISHED.has(c.status)) continue;
      seen.add(c.id);
      const full = c.logs ? c : await api.getCall(c.id).catch(() => c);
      const head = `[${full.tool}@${full.version ?? '?'}] ${full.id} ${full.status}${full.timings?.runMs == null ? '' : ` in ${Math.round(full.timings.runMs)} ms`}`;
      const lines = [head, ...(full.logs ?? []).map((l) => `  │ ${l}`), ...(full.error ? [`  ✗ ${full.error.code}: ${full.error.message}`] : [])];
      out.result(lines.join('\n'), { event: 'call', ...full });
    }
  }
}
