import { api } from '../api.js';
import { chip, h, table } from '../dom.js';
import { ms, percent, statusChip } from '../format.js';
import type { ConsoleTool, PageContext } from '../types.js';
import { every } from './poll.js';

/** Limits and holds in force: a Retry-After hold, the fleet-wide rate-limit pause. */
export function limitState(t: ConsoleTool): HTMLElement {
  if (t.holdMs > 0) return chip(`hold ${ms(t.holdMs)}`, 'warn');
  if (t.rateLimitMs > 0) return chip(`rate limited ${ms(t.rateLimitMs)}`, 'warn');
  return chip('none');
}

export function queueText(t: ConsoleTool): string {
  return `${t.queue.waiting + t.queue.prioritized} waiting · ${t.queue.active} active · ${t.queue.delayed} delayed`;
}

/** The landing page: every tool this key sees, with live health and traffic, refreshed every 3 s. */
export async function toolsPage(ctx: PageContext): Promise<void> {
  const status = h('p', { class: 'muted' });
  const holder = h('div');
  ctx.main.replaceChildren(h('h1', null, 'Tools'), status, holder);
  const draw = async () => {
    const data = await api<{ windowMs: number; tools: ConsoleTool[] }>('GET', '/console/tools', undefined, ctx.signal);
    status.textContent = `${data.tools.length} tools · traffic over the last ${Math.round(data.windowMs / 60_000)} minutes · updated ${new Date().toLocaleTimeString()}`;
    const headers: Array<string | [string, string]> = ['Tool', ...(ctx.session.admin ? ['Tenant'] : []), 'State', 'Breaker', 'Limit / hold', 'Queue', ['Calls/min', 'num'], ['Errors', 'num'], ['p50', 'num'], ['p95', 'num']];
    holder.replaceChildren(
      table(
        headers,
        data.tools.map((t) =>
          h(
            'tr',
            { 'data-tool': t.name },
            h('td', null, h('a', { href: `/console/tools/${encodeURIComponent(t.name)}` }, t.name), t.requiresApproval ? [' ', chip('approval')] : null, h('div', { class: 'muted' }, t.description)),
            ctx.session.admin ? h('td', null, t.tenant) : null,
            h('td', { title: t.reason ?? '' }, statusChip(t.enabled ? t.availability : 'disabled')),
            h('td', null, statusChip(t.breaker)),
            h('td', null, limitState(t)),
            h('td', null, queueText(t)),
            h('td', { class: 'num' }, String(t.stats.callsPerMin)),
            h('td', { class: 'num' }, percent(t.stats.errorRate)),
            h('td', { class: 'num' }, ms(t.stats.p50Ms)),
            h('td', { class: 'num' }, ms(t.stats.p95Ms)),
          ),
        ),
        'No tools registered for this key yet.',
      ),
    );
  };
  await draw();
  every(3_000, draw, ctx.signal);
}
