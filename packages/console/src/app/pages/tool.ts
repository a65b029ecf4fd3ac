import { api, ApiError, query } from '../api.js';
import { facts, h, json, notice, table } from '../dom.js';
import { ms, percent, statusChip, time } from '../format.js';
import { can, type CallRecord, type ConsoleTool, type PageContext, type ToolVersion } from '../types.js';
import { callsTable } from './calls-table.js';
import { limitState, queueText } from './tools.js';
import { every } from './poll.js';

type Detail = { windowMs: number; tool: ConsoleTool; spec: Record<string, unknown> & { parameters?: unknown; code?: string; tenant: string } };

/** One tool: health, spec (schema, limits), versions with rollback, recent calls. */
export async function toolPage(ctx: PageContext, name: string): Promise<void> {
  const path = `/tools/${encodeURIComponent(name)}`;
  const health = h('div');
  const versions = h('div');
  const recent = h('div');
  const spec = h('div');
  const message = h('div');
  const load = async () => {
    const detail = await api<Detail>('GET', `/console${path}`, undefined, ctx.signal);
    const t = detail.tool;
    health.replaceChildren(
      facts([
        ['State', [statusChip(t.enabled ? t.availability : 'disabled'), t.reason ? ` ${t.reason}` : '']],
        ['Breaker', statusChip(t.breaker)],
        ['Limit / hold', limitState(t)],
        ['Queue', `${queueText(t)} · ${t.queue.failed} failed kept`],
        [`Last ${Math.round(detail.windowMs / 60_000)} min`, `${t.stats.calls} calls · ${t.stats.callsPerMin}/min · errors ${percent(t.stats.errorRate)} · p50 ${ms(t.stats.p50Ms)} · p95 ${ms(t.stats.p95Ms)}`],
      ]),
    );
    return detail;
  };
  const loadVersions = async () => {
    const data = await api<{ versions: ToolVersion[] }>('GET', `${path}/versions`, undefined, ctx.signal);
    const writable = can(ctx.session, 'tools:write');
    versions.replaceChildren(
      table(
        ['Version', 'Created', 'By', 'Code hash', ''],
        data.versions.map((v) =>
          h(
            'tr',
            null,
            h('td', null, `v${v.version}`, v.current ? ' (current)' : '', v.rolledBackFrom ? ` ← v${v.rolledBackFrom}` : ''),
            h('td', null, time(v.createdAt)),
            h('td', { class: 'mono' }, v.createdBy ?? ''),
            h('td', { class: 'mono', title: v.codeHash }, v.codeHash.slice(0, 12)),
            h(
              'td',
              null,
              !v.current && writable
                ? h('button', { type: 'button', onclick: () => void rollback(v.version) }, `Roll back to v${v.version}`)
                : null,
            ),
          ),
        ),
      ),
    );
  };
  const rollback = async (version: number) => {
    try {
      const tool = await api<{ version: number }>('POST', `${path}/rollback`, { version });
      message.replaceChildren(notice(`Rolled back: v${tool.version} now runs the code of v${version}.`));
      await Promise.all([load(), loadVersions()]);
    } catch (err: unknown) {
      message.replaceChildren(notice(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err), 'bad'));
    }
  };

  const detail = await load();
  const s = detail.spec;
  const { parameters, code, ...rest } = s;
  const limits = ['limits', 'rateLimit', 'tenantRateLimit', 'concurrency', 'retries', 'breaker', 'deadlineMs', 'cacheTtlMs', 'egress', 'secrets', 'requiresApproval', 'enabled'];
  spec.replaceChildren(
    h(
      'div',
      { class: 'grid' },
      h('section', null, h('h2', null, 'Arguments schema'), json(parameters)),
      h('section', null, h('h2', null, 'Limits and settings'), facts(limits.filter((k) => rest[k] !== undefined).map((k) => [k, h('code', null, JSON.stringify(rest[k]))]))),
    ),
    h('details', null, h('summary', null, 'Code'), h('pre', null, code ?? '')),
  );
  const calls = await api<{ calls: CallRecord[] }>('GET', `/calls${query({ tool: name, limit: 20, tenant: ctx.session.admin ? s.tenant : undefined })}`, undefined, ctx.signal);
  recent.replaceChildren(callsTable(calls.calls, false), h('p', null, h('a', { href: `/console/calls${query({ tool: name, tenant: ctx.session.admin ? s.tenant : undefined })}` }, 'All calls of this tool →')));
  await loadVersions();
  ctx.main.replaceChildren(
    h('h1', null, name, ' ', h('span', { class: 'muted' }, `v${detail.tool.version}`)),
    h('p', null, detail.tool.description, ctx.session.admin ? h('span', { class: 'muted' }, ` · tenant ${s.tenant}`) : null),
    message,
    health,
    spec,
    h('h2', null, 'Versions'),
    versions,
    h('h2', null, 'Recent calls'),
    recent,
  );
  every(3_000, async () => void (await load()), ctx.signal);
}
