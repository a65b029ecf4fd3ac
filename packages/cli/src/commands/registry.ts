import { ApiError, type CallView, type PlannerApi } from '../api.js';
import { table, type Output } from '../output.js';
import { CliError } from './cli-error.js';

/**
 * `call NAME` arguments: `--args '{"a":1}'`, or `key=value` pairs whose values are read as JSON when
 * they parse (`a=1` is a number, `tags=["x"]` an array) and as text otherwise (`name=Ada`).
 */
export function parseCallArgs(argsJson: string | undefined, pairs: string[]): Record<string, unknown> {
  let args: Record<string, unknown> = {};
  if (argsJson !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(argsJson);
    } catch (err: unknown) {
      throw new CliError('INVALID_ARGUMENTS', `--args is not JSON (${(err as Error).message}): quote it, e.g. --args '{"a":1}'`, 2);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new CliError('INVALID_ARGUMENTS', '--args must be a JSON object, e.g. --args \'{"a":1}\'', 2);
    }
    args = parsed as Record<string, unknown>;
  }
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CliError('INVALID_ARGUMENTS', `'${pair}' is not key=value: write arguments as a=1 name=Ada, or use --args '{…}'`, 2);
    const raw = pair.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // plain text
    }
    args[pair.slice(0, eq)] = value;
  }
  return args;
}

/** `toolplane call NAME`: prints the result; a failed call exits 1 with its error code. */
export async function call(api: PlannerApi, out: Output, name: string, args: Record<string, unknown>, waitMs: number): Promise<void> {
  const { record, streamed } = await runCall(api, out, name, args, waitMs);
  const logs = streamed ? [] : (record.logs ?? []);
  switch (record.status) {
    case 'succeeded':
      for (const line of logs) out.progress(`  │ ${line}`);
      return out.result(typeof record.result === 'string' ? record.result : JSON.stringify(record.result, null, 2), record);
    case 'failed':
    case 'cancelled':
      if (out.json) out.result('', record);
      for (const line of logs) out.progress(`  │ ${line}`);
      throw new CliError(record.error?.code ?? 'CANCELLED', `${record.error?.message ?? 'the call was cancelled'} (call ${record.id}; \`toolplane calls ${name}\` lists recent calls)`);
    case 'awaiting_approval':
      if (out.json) out.result('', record);
      throw new CliError('AWAITING_APPROVAL', `call ${record.id} waits for approval: POST /v1/calls/${record.id}/approve (or /reject) with a key that has calls:approve`, 3);
    default:
      if (out.json) out.result('', record);
      throw new CliError('NOT_FINISHED', `call ${record.id} is still ${record.status} after ${waitMs} ms: wait longer with --wait MS, or see it later with \`toolplane calls ${name}\``, 3);
  }
}

const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

/**
 * Starts the call and follows its events, showing progress and log lines (stderr) as they come,
 * until it ends, waits for approval, or `waitMs` passes. A planner without the events route is
 * polled instead (the logs then come with the record).
 */
async function runCall(api: PlannerApi, out: Output, name: string, args: unknown, waitMs: number): Promise<{ record: CallView; streamed: boolean }> {
  const { id } = await api.startCall(name, args);
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), waitMs);
  try {
    for await (const e of api.callEvents(id, stop.signal)) {
      if (e.type === 'progress') out.progress(`  ${Math.round(e.data.fraction * 100)}%${e.data.message ? ` ${e.data.message}` : ''}`);
      else if (e.type === 'log') out.progress(`  │ ${e.data.line}`);
      else if (FINAL.has(e.data.status) && e.data.id) return { record: e.data as CallView, streamed: true };
      else if (e.data.status === 'awaiting_approval') break;
    }
    return { record: await api.getCall(id), streamed: true };
  } catch (err: unknown) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
    for (;;) {
      const record = await api.getCall(id);
      if (FINAL.has(record.status) || record.status === 'awaiting_approval' || stop.signal.aborted) return { record, streamed: false };
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    clearTimeout(timer);
    stop.abort();
  }
}

/** `toolplane calls NAME`: the newest calls with status and timings. */
export async function calls(api: PlannerApi, out: Output, name: string, limit: number): Promise<void> {
  const list = await api.listCalls(name, { limit });
  if (list.length === 0 && !out.json) return out.result(`no calls of ${name} yet: make one with \`toolplane call ${name}\``, list);
  out.result(
    table(
      ['ID', 'VERSION', 'STATUS', 'ATTEMPTS', 'QUEUED', 'RUN', 'CREATED', 'ERROR'],
      list.map((c: CallView) => [
        c.id,
        c.version === undefined ? '' : String(c.version),
        c.status,
        String(c.attempts),
        ms(c.timings?.queuedMs),
        ms(c.timings?.runMs),
        c.createdAt,
        c.error ? `${c.error.code}: ${c.error.message.split('\n')[0]!.slice(0, 60)}` : '',
      ]),
    ),
    list,
  );
}

function ms(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : `${Math.round(v)} ms`;
}

/** `toolplane versions NAME`. */
export async function versions(api: PlannerApi, out: Output, name: string): Promise<void> {
  const list = await api.versions(name);
  out.result(
    table(
      ['VERSION', 'CREATED', 'CODE', 'BY', ''],
      list.map((v) => [
        String(v.version),
        v.createdAt,
        v.codeHash.slice(0, 12),
        v.createdBy ?? '',
        [v.current ? 'current' : '', v.rolledBackFrom ? `rollback of v${v.rolledBackFrom}` : ''].filter(Boolean).join(', '),
      ]),
    ),
    list,
  );
}

/** `toolplane rollback NAME --to N`: the old code becomes a new, current version. */
export async function rollback(api: PlannerApi, out: Output, name: string, to: number): Promise<void> {
  const tool = await api.rollback(name, to);
  out.result(`${name}@${tool.version}  serves the code of v${to}`, tool);
}

/** `toolplane rm NAME`. */
export async function remove(api: PlannerApi, out: Output, name: string): Promise<void> {
  await api.deleteTool(name);
  out.result(`removed ${name}`, { name, removed: true });
}
