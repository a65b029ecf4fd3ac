import { ToolplaneError } from './errors.js';

/** How a {@link ToolplaneClient} talks to the planner. */
export type ClientOptions = {
  /** The planner's URL, e.g. `http://localhost:8080`. */
  baseUrl: string;
  /** An API key (`tp_…`) or the admin key; without it requests go unauthenticated (auth off). */
  apiKey?: string;
  /**
   * Attempts after the first for answers that say "later" (`429`, `503`) and for requests that got
   * no answer at all.
   * @default 4
   */
  maxRetries?: number;
  /**
   * First backoff; doubled per attempt, with jitter. A `Retry-After` header wins over it.
   * @default 200
   */
  retryBaseMs?: number;
  /**
   * The longest single wait between attempts (also caps `Retry-After`).
   * @default 30_000
   */
  maxRetryDelayMs?: number;
  /** Called before each retry: for logs and tests. */
  onRetry?: (info: { method: string; path: string; status: number; attempt: number; delayMs: number }) => void;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
};

type Resolved = Required<Omit<ClientOptions, 'apiKey' | 'onRetry'>> & Pick<ClientOptions, 'apiKey' | 'onRetry'>;

export function resolveOptions(opts: ClientOptions): Resolved {
  return {
    baseUrl: opts.baseUrl.replace(/\/+$/, ''),
    maxRetries: opts.maxRetries ?? 4,
    retryBaseMs: opts.retryBaseMs ?? 200,
    maxRetryDelayMs: opts.maxRetryDelayMs ?? 30_000,
    fetch: opts.fetch ?? globalThis.fetch.bind(globalThis),
    ...(opts.apiKey ? { apiKey: opts.apiKey } : {}),
    ...(opts.onRetry ? { onRetry: opts.onRetry } : {}),
  };
}

export type RequestInput = {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
};

/** `Retry-After` as ms: delta-seconds or an HTTP date; `undefined` when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * One API request: retried with exponential backoff and jitter on `429` and `503` (the API's way
 * of saying "not now": rate limits, tenant ceilings, Redis or a dependency down; none of them
 * accepted the request) and when no answer came, waiting what `Retry-After` asks when it is sent.
 * Resolves with the response once its status is below 400; otherwise throws {@link ToolplaneError}.
 */
export async function request(opts: Resolved, input: RequestInput): Promise<Response> {
  const url = new URL(opts.baseUrl + input.path);
  for (const [k, v] of Object.entries(input.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
  const headers: Record<string, string> = { accept: 'application/json', ...input.headers };
  if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
  if (input.body !== undefined) headers['content-type'] = 'application/json';
  for (let attempt = 0; ; attempt++) {
    let res: Response | undefined;
    let failure: unknown;
    try {
      res = await opts.fetch(url, {
        method: input.method,
        headers,
        ...(input.body !== undefined ? { body: JSON.stringify(input.body) } : {}),
        ...(input.signal ? { signal: input.signal } : {}),
      });
    } catch (err: unknown) {
      if (input.signal?.aborted) throw err;
      failure = err;
    }
    if (res && res.status < 400) return res;
    const again = attempt < opts.maxRetries && (!res || res.status === 429 || res.status === 503);
    if (!again) {
      if (!res) throw new ToolplaneError('NETWORK_ERROR', `no answer from ${url.origin}`, 0, undefined, { cause: failure });
      throw await errorOf(res);
    }
    const backoff = Math.min(opts.maxRetryDelayMs, opts.retryBaseMs * 2 ** attempt) * (0.5 + Math.random() / 2);
    const asked = res ? retryAfterMs(res.headers.get('retry-after')) : undefined;
    const delayMs = Math.round(Math.min(opts.maxRetryDelayMs, asked ?? backoff));
    await res?.body?.cancel();
    opts.onRetry?.({ method: input.method, path: input.path, status: res?.status ?? 0, attempt: attempt + 1, delayMs });
    await sleep(delayMs, input.signal);
  }
}

async function errorOf(res: Response): Promise<ToolplaneError> {
  const text = await res.text();
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: unknown } };
    if (typeof body.error?.code === 'string') {
      return new ToolplaneError(body.error.code, String(body.error.message ?? body.error.code), res.status, body.error.details);
    }
  } catch {
    // Not JSON (a proxy's page): fall through.
  }
  return new ToolplaneError(res.status >= 500 ? 'INTERNAL' : 'INVALID_REQUEST', `HTTP ${res.status}: ${text.slice(0, 200)}`, res.status);
}
