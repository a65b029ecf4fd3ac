import { watch } from 'node:fs';
import { join } from 'node:path';
import type { CallView, PlannerApi } from '../api.js';
import type { Output } from '../output.js';
import { BundleError } from '../bundle.js';
import { buildProject, isToolFile, TOOLS_DIR } from '../project.js';
import { deployedLine, registerChanged } from './deploy.js';

/** Saves come in bursts (editors write a file in several steps). */
const DEBOUNCE_MS = 80;
/** How often the calls of the project's tools are read for their logs. */
const LOG_POLL_MS = 500;

/**
 * `toolplane dev`: registers the project's tools, then rebuilds on every save under tools/ (the
 * saved tool alone, or every tool when a helper changed) and registers what changed. A file that fails to build is reported and its tool keeps its last good
 * version. Each finished call of the project's tools is printed with its logs. Runs until `signal`.
 */
export async function dev(root: string, api: PlannerApi, out: Output, signal: AbortSignal): Promise<void> {
  const startedAt = Date.now();
  /** Tool name per file, from the last good build: names the version a broken file keeps. */
  const lastGood = new Map<string, { name: string; version: number }>();
  let running: Promise<void> | undefined;
  /** What changed since the last build: tool files, or 'all' when a helper (or anything else) did. */
  let pending: Set<string> | 'all' | undefined;

  const sync = async (reason: string, scope: Set<string> | 'all') => {
    const t0 = performance.now();
    try {
      const { built: candidates, failures } = await buildProject(root, undefined, scope === 'all' ? undefined : scope);
      // A rebuilt file may take a name another file already has.
      const built = candidates.filter((t) => {
        const other = [...lastGood].find(([file, g]) => file !== t.file && g.name === t.name);
        if (other) failures.push(new BundleError(t.file, `${t.file}: the tool name '${t.name}' is also used by ${other[0]}`));
        return !other;
      });
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
    if (running || !pending) return;
    const scope = pending;
    pending = undefined;
    running = sync(reason, scope).finally(() => {
      running = undefined;
      if (!signal.aborted) schedule('change');
    });
  };
  const changed = (name: string | null) => {
    if (name && /\.(test|spec)\.[mc]?[jt]s$/.test(name)) return false; // tests are in no bundle
    // Only a tool file directly in tools/ changes only itself; a helper may change any tool.
    const file = name && !/[\\/]/.test(name) && isToolFile(name) ? `${TOOLS_DIR}/${name}` : undefined;
    if (!file) pending = 'all';
    else if (pending === undefined) pending = new Set([file]);
    else if (pending !== 'all') pending.add(file);
    return true;
  };

  // Watching starts before the first build, so a save made while it runs is not missed.
  let timer: NodeJS.Timeout | undefined;
  const watcher = watch(join(root, TOOLS_DIR), { recursive: true }, (_event, name) => {
    if (!changed(name)) return;
    clearTimeout(timer);
    timer = setTimeout(() => schedule('change'), DEBOUNCE_MS);
  });
  out.progress(`watching ${join(root, TOOLS_DIR)} → ${api.url} (Ctrl-C stops)`);
  pending = 'all';
  schedule('start');

  const seen = new Set<string>();
  const poll = setInterval(() => {
    void followNewCalls(api, out, [...new Set([...lastGood.values()].map((t) => t.name))], startedAt, seen, signal);
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
/** Calls followed at once; more are shown when they end. */
const MAX_FOLLOWED = 20;
let followed = 0;

/** Finds the project's new calls and prints each one's log lines as they come, then how it ended. */
async function followNewCalls(api: PlannerApi, out: Output, names: string[], since: number, seen: Set<string>, signal: AbortSignal): Promise<void> {
  for (const name of names) {
    let list: CallView[];
    try {
      list = await api.listCalls(name, { since, limit: 50 });
    } catch {
      continue; // the planner restarting is not the developer's error; the next poll tries again
    }
    for (const c of list.reverse()) {
      if (seen.has(c.id)) continue;
      if (followed >= MAX_FOLLOWED && !FINISHED.has(c.status)) continue; // picked up again on a later poll
      seen.add(c.id);
      followed++;
      void followCall(api, out, c, signal).finally(() => followed--);
    }
  }
}

async function followCall(api: PlannerApi, out: Output, call: CallView, signal: AbortSignal): Promise<void> {
  const tag = `[${call.tool}@${call.version ?? '?'}] ${call.id}`;
  let printedLogs = 0;
  let final: CallView | undefined;
  try {
    for await (const e of api.callEvents(call.id, signal)) {
      if (e.type === 'log') {
        printedLogs++;
        out.result(`${tag} │ ${e.data.line}`, { event: 'log', id: call.id, tool: call.tool, line: e.data.line });
      } else if (e.type === 'progress') {
        out.result(`${tag} ${Math.round(e.data.fraction * 100)}%${e.data.message ? ` ${e.data.message}` : ''}`, { event: 'progress', id: call.id, ...e.data });
      } else if (FINISHED.has(e.data.status) && e.data.id) {
        final = e.data as CallView;
        break;
      }
    }
  } catch {
    // no events route (an older planner): the call is shown when it ends, from its record
  }
  if (signal.aborted) return;
  while (!final) {
    const record = await api.getCall(call.id).catch(() => undefined);
    if (record && FINISHED.has(record.status)) final = record;
    else await new Promise((r) => setTimeout(r, LOG_POLL_MS));
    if (signal.aborted) return;
  }
  const lines = [
    ...(final.logs ?? []).slice(printedLogs).map((l) => `${tag} │ ${l}`),
    `${tag} ${final.status}${final.timings?.runMs == null ? '' : ` in ${Math.round(final.timings.runMs)} ms`}`,
    ...(final.error ? [`${tag} ✗ ${final.error.code}: ${final.error.message}`] : []),
  ];
  out.result(lines.join('\n'), { event: 'call', ...final });
}
