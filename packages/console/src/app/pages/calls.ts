import { api, query } from '../api.js';
import { h } from '../dom.js';
import type { CallRecord, PageContext } from '../types.js';
import { callsTable } from './calls-table.js';

const STATUSES = ['queued', 'awaiting_approval', 'running', 'succeeded', 'failed', 'cancelled'];

/** `datetime-local` value (local time) ↔ ms since epoch. */
function toLocalInput(msValue: string | null): string {
  if (!msValue) return '';
  const d = new Date(Number(msValue));
  if (Number.isNaN(d.getTime())) return '';
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}

/**
 * The call explorer: the audit trail filtered by tool, status, tenant (admins) and time range, a
 * page at a time (the API's cursor). The filters live in the address, so a view can be shared.
 */
export async function callsPage(ctx: PageContext): Promise<void> {
  const p = ctx.params;
  const field = (name: string, label: string, input: HTMLElement) => h('label', { for: `f-${name}` }, label, input);
  const tool = h('input', { id: 'f-tool', name: 'tool', value: p.get('tool') ?? '', placeholder: 'any tool', size: 16 });
  const status = h('select', { id: 'f-status', name: 'status' }, h('option', { value: '' }, 'any status'), STATUSES.map((s) => h('option', { value: s, selected: p.get('status') === s }, s.replace('_', ' '))));
  const tenant = h('input', { id: 'f-tenant', name: 'tenant', value: p.get('tenant') ?? '', placeholder: ctx.session.tenant, size: 12 });
  const since = h('input', { id: 'f-since', name: 'since', type: 'datetime-local', value: toLocalInput(p.get('since')) });
  const until = h('input', { id: 'f-until', name: 'until', type: 'datetime-local', value: toLocalInput(p.get('until')) });
  const form = h(
    'form',
    {
      class: 'filters',
      role: 'search',
      onsubmit: (e: Event) => {
        e.preventDefault();
        const at = (v: string) => (v ? String(new Date(v).getTime()) : undefined);
        ctx.navigate(`/console/calls${query({ tool: tool.value.trim(), status: status.value, tenant: ctx.session.admin ? tenant.value.trim() : undefined, since: at(since.value), until: at(until.value) })}`);
      },
    },
    field('tool', 'Tool', tool),
    field('status', 'Status', status),
    ctx.session.admin ? field('tenant', 'Tenant', tenant) : null,
    field('since', 'From', since),
    field('until', 'To', until),
    h('button', { type: 'submit', class: 'primary' }, 'Filter'),
    h('a', { href: '/console/calls' }, 'Clear'),
  );
  const filters = { tool: p.get('tool') ?? undefined, status: p.get('status') ?? undefined, tenant: ctx.session.admin ? (p.get('tenant') ?? undefined) : undefined, since: p.get('since') ?? undefined, until: p.get('until') ?? undefined };
  const page = await api<{ calls: CallRecord[]; nextCursor?: string }>('GET', `/calls${query({ ...filters, cursor: p.get('cursor') ?? undefined, limit: 50 })}`, undefined, ctx.signal);
  const pager = h(
    'div',
    { class: 'pager' },
    p.get('cursor') ? h('a', { href: `/console/calls${query(filters)}` }, '← First page') : null,
    page.nextCursor ? h('a', { href: `/console/calls${query({ ...filters, cursor: page.nextCursor })}`, rel: 'next' }, 'Next page →') : h('span', { class: 'muted' }, 'End of the trail'),
  );
  ctx.main.replaceChildren(h('h1', null, 'Calls'), form, callsTable(page.calls, ctx.session.admin), pager);
}
