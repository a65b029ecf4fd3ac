import { h, notice } from './dom.js';

/**
 * The sign-in form. The key is posted as JSON to /console/api/session (which sets the session
 * cookie), so it never enters the address bar; then the page reloads without the form, so the key
 * is nowhere in the page either.
 */
export function signInPage(main: HTMLElement, failed: boolean): void {
  const key = h('input', { id: 'key', name: 'key', type: 'password', autocomplete: 'off', required: true, size: 40 });
  const message = h('div', null, failed ? notice('That key was not accepted.', 'bad') : null);
  const submit = async () => {
    const res = await fetch('/console/api/session', { method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: key.value }) });
    key.value = '';
    // Reloaded, the page holds no trace of the key (the form and its field are gone).
    if (res.status === 204) return void location.replace(location.pathname);
    message.replaceChildren(notice(res.status === 403 ? 'Refused: open the console directly, not from another site.' : 'That key was not accepted.', 'bad'));
  };
  const form = h(
    'form',
    {
      class: 'signin',
      onsubmit: (e: Event) => {
        e.preventDefault();
        void submit();
      },
    },
    h('h1', null, 'Sign in'),
    h('p', { class: 'muted' }, 'Use an API key: a tenant key shows that tenant, the admin key every tenant. Or open /console?key=… once.'),
    h('label', { for: 'key' }, 'API key', key),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    message,
  );
  main.replaceChildren(form);
  key.focus();
}
