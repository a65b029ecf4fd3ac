import { api } from '../api.js';
import { h, table } from '../dom.js';
import { statusChip, time } from '../format.js';
import type { PageContext, RunSummary } from '../types.js';
import { every } from './poll.js';

/** Runs in progress, and a field to open any run by id. */
export async function runsPage(ctx: PageContext): Promise<void> {
  const holder = h('div');
  const id = h('input', { id: 'f-run', name: 'run', placeholder: 'run id', size: 30, pattern: '[0-9a-z]{26}', required: true });
  const form = h(
    'form',
    {
      class: 'filters',
      onsubmit: (e: Event) => {
        e.preventDefault();
        ctx.navigate(`/console/runs/${encodeURIComponent(id.value.trim())}`);
      },
    },
    h('label', { for: 'f-run' }, 'Open a run', id),
    h('button', { type: 'submit', class: 'primary' }, 'Open'),
  );
  const draw = async () => {
    const data = await api<{ runs: RunSummary[] }>('GET', '/console/runs', undefined, ctx.signal);
    holder.replaceChildren(
      table(
        ['Started', 'Run', ...(ctx.session.admin ? ['Tenant'] : []), 'Status', 'Model', ['Steps', 'num'], 'Input'],
        data.runs.map((r) =>
          h(
            'tr',
            null,
            h('td', null, time(r.createdAt)),
            h('td', { class: 'mono' }, h('a', { href: `/console/runs/${r.id}` }, r.id)),
            ctx.session.admin ? h('td', null, r.tenant) : null,
            h('td', null, statusChip(r.status)),
            h('td', null, r.model),
            h('td', { class: 'num' }, String(r.steps)),
            h('td', null, r.input),
          ),
        ),
        'No run is in progress.',
      ),
    );
  };
  await draw();
  ctx.main.replaceChildren(h('h1', null, 'Runs'), form, h('h2', null, 'In progress'), holder);
  every(3_000, draw, ctx.signal);
}
