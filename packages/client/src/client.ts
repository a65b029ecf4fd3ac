import type { z } from 'zod';
import type { CallRecord, CallRequest, CallStatus, Tool, ToolSpecInput, ToolVersionInfo } from '@toolplane/core';
import type { RunEvent, RunRequestInput, RunView } from '@toolplane/agent';
import { ToolplaneError } from './errors.js';
import { request, resolveOptions, type ClientOptions, type RequestInput } from './http.js';
import { readSse } from './sse.js';

/** The body of `POST /v1/calls`, as the caller writes it. */
export type CallInput = z.input<typeof CallRequest>;
/** What `POST /v1/calls` answers when the call has not finished (yet). */
export type CallAccepted = { id: string; status: Exclude<CallStatus, 'succeeded' | 'failed' | 'cancelled'> };
/** A tool as the API shows it. */
export type ToolView = Omit<Tool, 'tenant' | 'createdBy'> & { enabled: boolean };
/** Filters of `GET /v1/calls`. */
export type CallFilter = {
  tool?: string;
  status?: CallStatus;
  /** Epoch ms or ISO time. */
  since?: number | string;
  until?: number | string;
  errorCode?: string;
  argsHash?: string;
  /** Calls per page. @default 50 */
  limit?: number;
  /** Admins: another tenant's calls. */
  tenant?: string;
};
export type CallPage = { calls: CallRecord[]; nextCursor?: string };
/** One event of a run's stream, with its id (send it back as `lastEventId` to resume). */
export type RunStreamEvent = { id?: string; event: RunEvent };

const FINISHED: ReadonlySet<string> = new Set(['succeeded', 'failed', 'cancelled']);

/**
 * A typed client of the Toolplane HTTP API. Types come from the same zod schemas and types the
 * planner validates with (`@toolplane/core`, `@toolplane/agent`); refusals throw
 * {@link ToolplaneError} with the API's stable code; `429` and `503` are retried with backoff,
 * honouring `Retry-After`.
 */
export class ToolplaneClient {
  private readonly opts: ReturnType<typeof resolveOptions>;

  constructor(options: ClientOptions) {
    this.opts = resolveOptions(options);
  }

  private async json<T>(input: RequestInput): Promise<T> {
    const res = await request(this.opts, input);
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  private static path(...segments: string[]): string {
    return segments.map(encodeURIComponent).join('/');
  }

  readonly tools = {
    /** Your tools (`available`: only those a model can call now). */
    list: async (opts: { available?: boolean } = {}): Promise<ToolView[]> =>
      (await this.json<{ tools: ToolView[] }>({ method: 'GET', path: '/v1/tools', query: { available: opts.available } })).tools,
    /** The tools in OpenAI function-calling format, for `tools` of Chat Completions. */
    listOpenAi: (opts: { available?: boolean } = {}): Promise<Array<{ type: 'function'; function: { name: string; description: string; parameters: Record<string, unknown> } }>> =>
      this.json({ method: 'GET', path: '/v1/tools', query: { format: 'openai', available: opts.available } }),
    get: (name: string): Promise<ToolView & { stats: Record<string, unknown> }> => this.json({ method: 'GET', path: `/v1/tools/${ToolplaneClient.path(name)}` }),
    /** Registers or replaces a tool; every replace is a new version. */
    put: (name: string, spec: ToolSpecInput): Promise<ToolView> => this.json({ method: 'PUT', path: `/v1/tools/${ToolplaneClient.path(name)}`, body: spec }),
    delete: async (name: string): Promise<void> => void (await request(this.opts, { method: 'DELETE', path: `/v1/tools/${ToolplaneClient.path(name)}` })),
    versions: async (name: string): Promise<ToolVersionInfo[]> =>
      (await this.json<{ versions: ToolVersionInfo[] }>({ method: 'GET', path: `/v1/tools/${ToolplaneClient.path(name)}/versions` })).versions,
    rollback: (name: string, version: number): Promise<ToolView> =>
      this.json({ method: 'POST', path: `/v1/tools/${ToolplaneClient.path(name)}/rollback`, body: { version } }),
  };

  readonly calls = {
    /**
     * Submits a call. Without `wait` it answers at once with `{id, status}`; with `wait` the call
     * as it stands when it finished or the wait ran out.
     */
    create: (call: CallInput, opts: { signal?: AbortSignal } = {}): Promise<CallAccepted | CallRecord> =>
      this.json({ method: 'POST', path: '/v1/calls', body: call, ...(opts.signal ? { signal: opts.signal } : {}) }),
    get: (id: string): Promise<CallRecord> => this.json({ method: 'GET', path: `/v1/calls/${ToolplaneClient.path(id)}` }),
    /**
     * Resolves with the call once it has finished, or as it stands after `timeoutMs` (default 5
     * minutes). Reads it with growing pauses (50 ms up to 1 s).
     */
    wait: async (id: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<CallRecord> => {
      const deadline = Date.now() + (opts.timeoutMs ?? 300_000);
      for (let pauseMs = 50; ; pauseMs = Math.min(1_000, pauseMs * 2)) {
        const call = await this.calls.get(id);
        if (FINISHED.has(call.status) || Date.now() >= deadline) return call;
        await new Promise((r) => setTimeout(r, Math.min(pauseMs, Math.max(0, deadline - Date.now()))));
        opts.signal?.throwIfAborted();
      }
    },
    /** Submits a call and resolves with it finished: {@link calls.create} then {@link calls.wait}. */
    run: async (call: Omit<CallInput, 'wait'>, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<CallRecord> => {
      const accepted = await this.calls.create(call, opts);
      return FINISHED.has(accepted.status) ? (accepted as CallRecord) : this.calls.wait(accepted.id, opts);
    },
    /**
     * Your tenant's calls, newest first: iterate the calls (`for await (const c of client.calls.list())`)
     * or the pages (`.pages()`); pages are read as the loop asks for them.
     */
    list: (filter: CallFilter = {}): AsyncIterable<CallRecord> & { pages(): AsyncIterable<CallPage> } => {
      const pages = async function* (this: ToolplaneClient): AsyncGenerator<CallPage> {
        let cursor: string | undefined;
        do {
          const page: CallPage = await this.json({ method: 'GET', path: '/v1/calls', query: { ...filter, cursor } });
          yield page;
          cursor = page.nextCursor;
        } while (cursor);
      }.bind(this);
      return {
        pages,
        async *[Symbol.asyncIterator]() {
          for await (const page of pages()) yield* page.calls;
        },
      };
    },
    cancel: (id: string): Promise<CallRecord> => this.json({ method: 'POST', path: `/v1/calls/${ToolplaneClient.path(id)}/cancel` }),
    retry: (id: string): Promise<CallRecord> => this.json({ method: 'POST', path: `/v1/calls/${ToolplaneClient.path(id)}/retry` }),
    /** Approves a call waiting for approval; `argsHash` binds the approval to the exact arguments. */
    approve: (id: string, opts: { argsHash?: string } = {}): Promise<CallRecord> =>
      this.json({ method: 'POST', path: `/v1/calls/${ToolplaneClient.path(id)}/approve`, body: opts }),
    reject: (id: string): Promise<CallRecord> => this.json({ method: 'POST', path: `/v1/calls/${ToolplaneClient.path(id)}/reject` }),
  };

  readonly runs = {
    create: (run: RunRequestInput): Promise<{ id: string; status: string }> => this.json({ method: 'POST', path: '/v1/runs', body: run }),
    get: (id: string): Promise<RunView> => this.json({ method: 'GET', path: `/v1/runs/${ToolplaneClient.path(id)}` }),
    /**
     * The run's events, past then live, ending after `finished`. A stream that breaks is opened
     * again from the last event seen (`Last-Event-ID`), so no event is lost or repeated.
     */
    events: (id: string, opts: { lastEventId?: string; signal?: AbortSignal } = {}): AsyncIterable<RunStreamEvent> => {
      const open = (lastEventId: string | undefined) =>
        request(this.opts, {
          method: 'GET',
          path: `/v1/runs/${ToolplaneClient.path(id)}/events`,
          headers: { accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
      const maxReopens = this.opts.maxRetries;
      return {
        async *[Symbol.asyncIterator]() {
          let last = opts.lastEventId;
          for (let reopens = 0; ; reopens++) {
            const res = await open(last);
            if (!res.body) throw new ToolplaneError('INTERNAL', 'the event stream has no body', res.status);
            try {
              for await (const message of readSse(res.body)) {
                if (message.id) last = message.id;
                const event = JSON.parse(message.data) as RunEvent;
                yield { ...(message.id ? { id: message.id } : {}), event };
                if (event.type === 'finished') return;
              }
            } catch (err: unknown) {
              if (opts.signal?.aborted || reopens >= maxReopens) throw err;
              continue;
            }
            // The server ended the stream without `finished` (it shut down): open it again.
            if (reopens >= maxReopens) return;
          }
        },
      };
    },
  };
}
