import { api, ApiError } from '../api.js';
import { h, json, notice, table } from '../dom.js';
import { time } from '../format.js';
import { can, type Approval, type PageContext } from '../types.js';
import { every } from './poll.js';

/** Calls waiting for a person, newest first; approve binds to the argument hash shown. */
export async function approvalsPage(ctx: PageContext): Promise<void> {
  const message = h('div');
  const holder = h('div');
  const decide = async (a: Approval, verdict: 'approve' | 'reject') => {
    try {
      await api('POST', `/calls/${a.id}/${verdict}`, verdict === 'approve' ? { argsHash: a.argsHash } : undefined);
      message.replaceChildren(notice(`${verdict === 'approve' ? 'Approved' : 'Rejected'} call ${a.id} (${a.tool}).`));
    } catch (err: unknown) {
      message.replaceChildren(notice(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err), 'bad'));
    }
    await draw();
  };
  const allowed = can(ctx.session, 'calls:approve');
  const draw = async () => {
    const data = await api<{ approvals: Approval[] }>('GET', '/console/approvals', undefined, ctx.signal);
    holder.replaceChildren(
      table(
        ['Created', 'Call', 'Tool', ...(ctx.session.admin ? ['Tenant'] : []), 'Arguments', 'Arguments hash', ''],
        data.approvals.map((a) =>
          h(
            'tr',
            { 'data-call': a.id },
            h('td', null, time(a.createdAt)),
            h('td', { class: 'mono' }, h('a', { href: `/console/calls/${a.id}` }, a.id)),
            h('td', null, a.tool),
            ctx.session.admin ? h('td', null, a.tenant) : null,
            h('td', null, json(a.arguments)),
            h('td', null, h('code', { 'data-args-hash': a.argsHash }, a.argsHash)),
            h(
              'td',
              null,
              allowed
                ? h('div', { class: 'actions' }, h('button', { type: 'button', class: 'primary', onclick: () => void decide(a, 'approve') }, 'Approve'), h('button', { type: 'button', class: 'danger', onclick: () => void decide(a, 'reject') }, 'Reject'))
                : h('span', { class: 'muted' }, 'needs calls:approve'),
            ),
          ),
        ),
        'Nothing is waiting for approval.',
      ),
    );
  };
  await draw();
  ctx.main.replaceChildren(h('h1', null, 'Approvals'), h('p', { class: 'muted' }, 'Calls of tools that require approval, newest first. Approving binds the decision to the arguments hash shown.'), message, holder);
  every(3_000, draw, ctx.signal);
}
