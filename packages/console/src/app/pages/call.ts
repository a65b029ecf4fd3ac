import { api, ApiError } from '../api.js';
import { facts, h, json, notice, table } from '../dom.js';
import { ms, statusChip, time } from '../format.js';
import { can, type ConsoleCall, type PageContext } from '../types.js';
import { every } from './poll.js';

const FINISHED = ['succeeded', 'failed', 'cancelled'];

/**
 * One call: arguments, result or error, logs, attempts with their times, the trace link, and the
 * actions this key's scopes allow (cancel, retry, approve or reject with the argument hash the
 * approval binds to). Refreshed every second until the call has finished.
 */
export async function callPage(ctx: PageContext, id: string): Promise<void> {
  const message = h('div');
  const body = h('div');
  let finished = false;
  const act = async (label: string, path: string, payload?: unknown) => {
    try {
      await api('POST', `/calls/${id}/${path}`, payload);
      message.replaceChildren(notice(`${label}: done.`));
      finished = false;
    } catch (err: unknown) {
      message.replaceChildren(notice(err instanceof ApiError ? `${label} refused — ${err.code}: ${err.message}` : String(err), 'bad'));
    }
    await draw();
  };
  const draw = async () => {
    const d = await api<ConsoleCall>('GET', `/console/calls/${encodeURIComponent(id)}`, undefined, ctx.signal);
    const c = d.call;
    finished = FINISHED.includes(c.status);
    const trace = d.traceId
      ? ctx.session.traceUrl
        ? h('a', { href: ctx.session.traceUrl.replace('{traceId}', d.traceId), target: '_blank', rel: 'noopener noreferrer', class: 'mono' }, d.traceId)
        : h('span', { class: 'mono' }, d.traceId)
      : undefined;
    const actions = h('div', { class: 'actions' });
    if (can(ctx.session, 'calls:write') && ['queued', 'running', 'awaiting_approval'].includes(c.status)) {
      actions.append(h('button', { type: 'button', class: 'danger', onclick: () => void act('Cancel', 'cancel') }, 'Cancel call'));
    }
    if (can(ctx.session, 'calls:write') && c.status === 'failed') {
      actions.append(h('button', { type: 'button', class: 'primary', onclick: () => void act('Retry', 'retry') }, 'Retry call'));
    }
    if (can(ctx.session, 'calls:approve') && c.status === 'awaiting_approval' && d.pendingArgsHash) {
      const hash = d.pendingArgsHash;
      actions.append(
        h('button', { type: 'button', class: 'primary', onclick: () => void act('Approve', 'approve', { argsHash: hash }) }, 'Approve'),
        h('button', { type: 'button', class: 'danger', onclick: () => void act('Reject', 'reject') }, 'Reject'),
        h('span', { class: 'muted' }, 'approval binds to arguments hash ', h('code', { 'data-args-hash': hash }, hash)),
      );
    }
    body.replaceChildren(
      facts([
        ['Status', statusChip(c.status)],
        ['Tool', h('a', { href: `/console/tools/${encodeURIComponent(c.tool)}` }, c.tool)],
        ['Version', `v${c.version}`],
        ['Tenant', ctx.session.admin ? (c.tenant ?? 'default') : undefined],
        ['Created', time(c.createdAt)],
        ['Queued', ms(c.timings.queuedMs)],
        ['Run', ms(c.timings.runMs)],
        ['Deadline', d.deadlineAt ? time(d.deadlineAt) : undefined],
        ['Arguments hash', c.argsHash ? h('code', null, c.argsHash) : undefined],
        ['Approved hash', d.approvedArgsHash ? h('code', null, d.approvedArgsHash) : undefined],
        ['Trace', trace],
      ]),
      actions,
      h(
        'div',
        { class: 'grid' },
        h('section', null, h('h2', null, 'Arguments'), d.arguments === undefined ? h('p', { class: 'muted' }, 'Not kept once the call moved to history.') : json(d.arguments)),
        c.error
          ? h('section', null, h('h2', null, 'Error'), h('p', { class: 'bad' }, h('strong', { class: 'mono' }, c.error.code), ' ', c.error.message))
          : h('section', null, h('h2', null, 'Result', c.cached ? ' (from cache)' : ''), c.status === 'succeeded' ? json(c.result) : h('p', { class: 'muted' }, 'No result yet.')),
      ),
      h('h2', null, 'Attempts'),
      table(
        [['#', 'num'], 'Outcome', 'Started', 'Finished', ['Run', 'num'], 'Error'],
        d.attempts.map((a) =>
          h(
            'tr',
            { 'data-attempt': a.number },
            h('td', { class: 'num' }, String(a.number)),
            h('td', null, statusChip(a.outcome)),
            h('td', null, a.startedAt ? time(a.startedAt) : '—'),
            h('td', null, a.finishedAt ? time(a.finishedAt) : '—'),
            h('td', { class: 'num' }, ms(a.runMs)),
            h('td', null, a.error ? `${a.error.code}: ${a.error.message}` : ''),
          ),
        ),
        'Not run yet.',
      ),
      h('h2', null, 'Logs'),
      c.logs && c.logs.length > 0 ? h('pre', null, c.logs.join('\n')) : h('p', { class: 'muted' }, 'No log lines.'),
    );
  };
  await draw();
  ctx.main.replaceChildren(h('h1', null, 'Call ', h('span', { class: 'mono' }, id)), message, body);
  every(1_000, async () => (finished ? undefined : draw()), ctx.signal);
}
