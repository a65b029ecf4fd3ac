/**
 * The CLI's only door to the planner: JSON over HTTP with the key in `Authorization`. Every failure
 * becomes an {@link ApiError} with the API's stable code (or `UNREACHABLE` when nothing answers).
 */

/** Where the planner is and who we are. */
export type Connection = { url: string; key?: string };

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** A call as `GET /v1/calls/{id}` shows it. */
export type CallView = {
  id: string;
  tool: string;
  version?: number;
  status: string;
  result?: unknown;
  error?: { code: string; message: string };
  logs?: string[];
  attempts: number;
  createdAt: string;
  timings: { queuedMs: number | null; runMs: number | null };
};

/** One server-sent event of `GET /v1/calls/{id}/events`. */
export type CallEvent =
  | { type: 'status'; data: { status: string; attempts?: number } & Partial<CallView> }
  | { type: 'progress'; data: { fraction: number; message?: string; attempt?: number } }
  | { type: 'log'; data: { line: string; attempt?: number } };

function parseEvent(block: string): CallEvent | undefined {
  let type = 'message';
  let data = '';
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) type = line.slice(6).trim();
    else if (line.startsWith('data:')) data += line.slice(5).trimStart();
  }
  if (!data || (type !== 'status' && type !== 'progress' && type !== 'log')) return undefined;
  try {
    return { type, data: JSON.parse(data) } as CallEvent;
  } catch {
    return undefined;
  }
}

/** A version as `GET /v1/tools/{name}/versions` lists it. */
export type VersionView = { version: number; createdAt: string; codeHash: string; createdBy?: string; current?: boolean; rolledBackFrom?: number };

/** The registered tool (the fields the CLI reads). */
export type ToolView = { name: string; version: number; code: string; createdAt: string };

export class PlannerApi {
  readonly url: string;
  constructor(private readonly conn: Connection) {
    this.url = conn.url.replace(/\/+$/, '');
  }

  /** The tool, or undefined when there is none of that name. */
  async getTool(name: string): Promise<ToolView | undefined> {
    try {
      return await this.request<ToolView>('GET', `/v1/tools/${enc(name)}`);
    } catch (err: unknown) {
      if (err instanceof ApiError && err.status === 404) return undefined;
      throw err;
    }
  }

  putTool(name: string, spec: Record<string, unknown>): Promise<ToolView> {
    return this.request('PUT', `/v1/tools/${enc(name)}`, spec);
  }

  deleteTool(name: string): Promise<void> {
    return this.request('DELETE', `/v1/tools/${enc(name)}`);
  }

  async versions(name: string): Promise<VersionView[]> {
    return (await this.request<{ versions: VersionView[] }>('GET', `/v1/tools/${enc(name)}/versions`)).versions;
  }

  rollback(name: string, version: number): Promise<ToolView & { rolledBackFrom?: number }> {
    return this.request('POST', `/v1/tools/${enc(name)}/rollback`, { version });
  }

  /** Starts a call without waiting: `{ id, status }`. */
  startCall(tool: string, args: unknown): Promise<{ id: string; status: string }> {
    return this.request('POST', '/v1/calls', { tool, arguments: args });
  }

  /**
   * A call's server-sent events (`status`, `progress`, `log`) as they come, until the final `status`
   * (whose data is the whole call) or `signal`. Throws {@link ApiError} if the stream cannot open.
   */
  async *callEvents(id: string, signal: AbortSignal): AsyncGenerator<CallEvent> {
    let res: Response;
    try {
      res = await fetch(`${this.url}/v1/calls/${enc(id)}/events`, {
        headers: { accept: 'text/event-stream', ...(this.conn.key ? { authorization: `Bearer ${this.conn.key}` } : {}) },
        signal,
      });
    } catch (err: unknown) {
      if (signal.aborted) return;
      throw new ApiError('UNREACHABLE', `no planner answers at ${this.url} (${networkReason(err)})`, 0);
    }
    if (!res.ok || !res.body) {
      const text = await res.text().catch(() => '');
      throw new ApiError(`HTTP_${res.status}`, text.slice(0, 200) || res.statusText, res.status);
    }
    let buffer = '';
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = parseEvent(block);
          if (event) yield event;
        }
      }
    } catch (err: unknown) {
      if (!signal.aborted) throw err;
    }
  }

  getCall(id: string): Promise<CallView> {
    return this.request('GET', `/v1/calls/${enc(id)}`);
  }

  /** The newest calls of a tool, newest first; `since` in ms since the epoch. */
  async listCalls(tool: string, opts: { limit?: number; since?: number } = {}): Promise<CallView[]> {
    const q = new URLSearchParams({ tool, limit: String(opts.limit ?? 20) });
    if (opts.since !== undefined) q.set('since', String(opts.since));
    return (await this.request<{ calls: CallView[] }>('GET', `/v1/calls?${q}`)).calls;
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.url + path, {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(this.conn.key ? { authorization: `Bearer ${this.conn.key}` } : {}),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (err: unknown) {
      throw new ApiError(
        'UNREACHABLE',
        `no planner answers at ${this.url} (${networkReason(err)}): start one with \`make up\`, or point TOOLPLANE_URL / --url at yours`,
        0,
      );
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (res.ok) return json as T;
    const error = (json as { error?: { code?: string; message?: string; details?: unknown } } | undefined)?.error;
    throw new ApiError(error?.code ?? `HTTP_${res.status}`, error?.message ?? (text.slice(0, 200) || res.statusText), res.status, error?.details);
  }
}

/** `ECONNREFUSED` and the like, from undici's `fetch failed` and its causes. */
function networkReason(err: unknown): string {
  let reason = err instanceof Error ? err.message : String(err);
  for (let e = err as { code?: unknown; cause?: unknown; errors?: unknown[]; message?: unknown } | undefined, depth = 0; e && depth < 5; depth++) {
    if (typeof e.code === 'string') return e.code;
    const inner = Array.isArray(e.errors) ? e.errors[0] : undefined;
    if (inner && typeof (inner as { code?: unknown }).code === 'string') return (inner as { code: string }).code;
    if (typeof e.message === 'string') reason = e.message;
    e = e.cause as typeof e;
  }
  return reason;
}

function enc(s: string): string {
  return encodeURIComponent(s);
}
