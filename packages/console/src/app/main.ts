import { api, ApiError } from './api.js';
import { h, notice } from './dom.js';
import { approvalsPage } from './pages/approvals.js';
import { callPage } from './pages/call.js';
import { callsPage } from './pages/calls.js';
import { runPage } from './pages/run.js';
import { runsPage } from './pages/runs.js';
import { toolPage } from './pages/tool.js';
import { toolsPage } from './pages/tools.js';
import { signInPage } from './signin.js';
import type { PageContext, Session } from './types.js';

type Route = { pattern: RegExp; section: string; page: (ctx: PageContext, ...parts: string[]) => Promise<void> };

const ROUTES: Route[] = [
  { pattern: /^\/console\/?$/, section: 'tools', page: toolsPage },
  { pattern: /^\/console\/tools\/([^/]+)$/, section: 'tools', page: toolPage },
  { pattern: /^\/console\/calls\/?$/, section: 'calls', page: callsPage },
  { pattern: /^\/console\/calls\/([^/]+)$/, section: 'calls', page: callPage },
  { pattern: /^\/console\/runs\/?$/, section: 'runs', page: runsPage },
  { pattern: /^\/console\/runs\/([^/]+)$/, section: 'runs', page: runPage },
  { pattern: /^\/console\/approvals\/?$/, section: 'approvals', page: approvalsPage },
];

const SHORTCUTS: Record<string, string> = { t: '/console', c: '/console/calls', r: '/console/runs', a: '/console/approvals' };

let session: Session | undefined;
let leaving = new AbortController();

function main(): HTMLElement {
  return document.getElementById('main')!;
}

/** Draws the page the address names; the previous page's polls and streams stop first. */
async function render(focus: boolean): Promise<void> {
  leaving.abort();
  leaving = new AbortController();
  const signal = leaving.signal;
  const url = new URL(location.href);
  const where = main();
  try {
    session ??= await api<Session>('GET', '/console/session');
  } catch (err: unknown) {
    if (err instanceof ApiError && err.status === 401) return signInPage(where, url.searchParams.get('signin') === 'failed');
    return void where.replaceChildren(notice(`The planner cannot be reached: ${String(err)}`, 'bad'));
  }
  drawWho(session);
  const route = ROUTES.find((r) => r.pattern.test(url.pathname));
  for (const a of document.querySelectorAll<HTMLAnchorElement>('nav a')) {
    if (a.dataset.section === route?.section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!route) return void where.replaceChildren(h('h1', null, 'Not found'), h('p', null, h('a', { href: '/console' }, 'Back to the tools')));
  const parts = (route.pattern.exec(url.pathname) ?? []).slice(1).map(decodeURIComponent);
  const ctx: PageContext = { session, main: where, params: url.searchParams, signal, navigate };
  try {
    await route.page(ctx, ...parts);
  } catch (err: unknown) {
    if (signal.aborted) return;
    if (err instanceof ApiError && err.status === 401) {
      session = undefined;
      return signInPage(where, false);
    }
    where.replaceChildren(h('h1', null, 'Something went wrong'), notice(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err), 'bad'));
  }
  if (focus && !signal.aborted) where.focus();
}

function drawWho(s: Session): void {
  const who = document.getElementById('who');
  if (!who || who.childElementCount > 0) return;
  const signOut = h('button', {
    type: 'button',
    onclick: () =>
      void fetch('/console/api/session', { method: 'DELETE', credentials: 'same-origin' }).then(() => {
        session = undefined;
        location.replace('/console');
      }),
  }, 'Sign out');
  who.replaceChildren(`${s.admin ? 'admin · all tenants' : `tenant ${s.tenant}`} · key ${s.keyId} `, signOut);
}

function navigate(path: string): void {
  history.pushState(null, '', path);
  void render(true);
}

document.addEventListener('click', (e) => {
  const a = (e.target as Element | null)?.closest?.('a');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith('/console') || url.pathname.startsWith('/console/assets')) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});

document.addEventListener('keydown', (e) => {
  const target = e.target as HTMLElement;
  if (e.ctrlKey || e.metaKey || e.altKey || ['INPUT', 'SELECT', 'TEXTAREA'].includes(target.tagName)) return;
  const path = SHORTCUTS[e.key];
  if (path && session) {
    e.preventDefault();
    return navigate(path);
  }
  if (e.key === '/') {
    const field = main().querySelector<HTMLElement>('input, select');
    if (field) {
      e.preventDefault();
      field.focus();
    }
    return;
  }
  if (e.key === 'j' || e.key === 'k') {
    // Moves between the first links of the rows of the page's main table.
    const links = [...main().querySelectorAll<HTMLAnchorElement>('tbody tr td a')].filter((a, i, all) => all.findIndex((b) => b.closest('tr') === a.closest('tr')) === i);
    if (links.length === 0) return;
    const at = links.indexOf(document.activeElement as HTMLAnchorElement);
    const next = e.key === 'j' ? Math.min(links.length - 1, at + 1) : Math.max(0, at < 0 ? 0 : at - 1);
    e.preventDefault();
    links[next]!.focus();
  }
});

window.addEventListener('popstate', () => void render(true));
void render(false);
