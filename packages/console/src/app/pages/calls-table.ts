import { h, table } from '../dom.js';
import { ms, statusChip, time } from '../format.js';
import type { CallRecord } from '../types.js';

/** Calls as a table, newest first, each linking to its page. */
export function callsTable(calls: CallRecord[], showTenant: boolean): HTMLElement {
  return table(
    ['Created', 'Call', 'Tool', ...(showTenant ? ['Tenant'] : []), 'Status', 'Error', ['Attempts', 'num'], ['Queued', 'num'], ['Run', 'num']],
    calls.map((c) =>
      h(
        'tr',
        { 'data-call': c.id },
        h('td', null, time(c.createdAt)),
        h('td', { class: 'mono' }, h('a', { href: `/console/calls/${c.id}` }, c.id)),
        h('td', null, c.tool),
        showTenant ? h('td', null, c.tenant ?? 'default') : null,
        h('td', null, statusChip(c.status)),
        h('td', { class: 'mono' }, c.error?.code ?? ''),
        h('td', { class: 'num' }, String(c.attempts)),
        h('td', { class: 'num' }, ms(c.timings.queuedMs)),
        h('td', { class: 'num' }, ms(c.timings.runMs)),
      ),
    ),
    'No calls match.',
  );
}
