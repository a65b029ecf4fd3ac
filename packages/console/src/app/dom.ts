/**
 * DOM building without HTML strings: every text goes in as a text node, so nothing a tool, a call
 * or a model wrote (names, arguments, results, logs) is ever parsed as markup.
 */
export type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | undefined | ((e: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(name.replace(/^on/, ''), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** A table with a header row; `rows` are `<tr>`s. */
export function table(headers: Array<string | [string, string]>, rows: Child[], empty = 'Nothing here yet.'): HTMLElement {
  const head = h('tr', null, headers.map((c) => (Array.isArray(c) ? h('th', { class: c[1], scope: 'col' }, c[0]) : h('th', { scope: 'col' }, c))));
  const body = h('tbody', null, rows);
  if (body.childElementCount === 0) body.append(h('tr', null, h('td', { colspan: headers.length, class: 'muted' }, empty)));
  return h('table', null, h('thead', null, head), body);
}

/** JSON, pretty-printed in a `<pre>`. */
export function json(value: unknown): HTMLElement {
  return h('pre', null, value === undefined ? '—' : JSON.stringify(value, null, 2));
}

export function chip(text: string, tone?: 'ok' | 'bad' | 'warn'): HTMLElement {
  return h('span', { class: tone ? `chip ${tone}` : 'chip' }, text);
}

/** A definition list of facts; entries whose value is undefined are left out. */
export function facts(entries: Array<[string, Child | undefined]>): HTMLElement {
  return h('dl', { class: 'facts' }, entries.filter(([, v]) => v !== undefined).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

export function notice(text: string, tone?: 'bad'): HTMLElement {
  return h('div', { class: tone ? `notice ${tone}` : 'notice', role: tone ? 'alert' : 'status' }, text);
}
