import { createHash } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError, type CallToolResult, type Tool as McpTool } from '@modelcontextprotocol/sdk/types.js';
import { ToolExecError, type Logger } from '@toolplane/core';

/** Where an upstream is and the headers to send, secrets already resolved. Never log it. */
export type UpstreamConnection = { url: string; headers: Record<string, string> };

/** What the client calls itself in `initialize`. */
const CLIENT_INFO = { name: 'toolplane', version: '0.1.0' };

/** Listing stops here: an upstream offering more tools than this is misbehaving. */
export const MAX_UPSTREAM_TOOLS = 1000;
const MAX_LIST_PAGES = 50;

/** Connecting or listing an upstream failed. The message names the upstream, never its headers. */
export class UpstreamConnectError extends Error {
  override readonly name = 'UpstreamConnectError';
}

async function connect(conn: UpstreamConnection, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(conn.url), {
    requestInit: { headers: conn.headers },
    // The standalone SSE stream only carries server notifications, which workers do not use; a few
    // quick retries are enough when the upstream drops it.
    reconnectionOptions: { initialReconnectionDelay: 1000, maxReconnectionDelay: 30_000, reconnectionDelayGrowFactor: 2, maxRetries: 2 },
  });
  const client = new Client(CLIENT_INFO, { capabilities: {} });
  try {
    await client.connect(transport, { timeout: opts.timeoutMs, ...(opts.signal ? { signal: opts.signal } : {}) });
  } catch (err: unknown) {
    await client.close().catch(() => {});
    throw err;
  }
  return client;
}

/** Ends a session politely (DELETE for servers with sessions), then closes the client. */
async function disconnect(client: Client): Promise<void> {
  const transport = client.transport as StreamableHTTPClientTransport | undefined;
  await Promise.race([transport?.terminateSession().catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())]);
  await client.close().catch(() => {});
}

/**
 * Connects to an MCP server, lists all its tools (following `nextCursor`) and disconnects.
 * Throws {@link UpstreamConnectError} when it cannot.
 */
export async function listUpstreamTools(conn: UpstreamConnection, opts: { timeoutMs: number }): Promise<McpTool[]> {
  let client: Client;
  try {
    client = await connect(conn, opts);
  } catch (err: unknown) {
    throw new UpstreamConnectError(`cannot connect to ${safeUrl(conn.url)}: ${describe(err)}`, { cause: err });
  }
  try {
    if (!client.getServerCapabilities()?.tools) throw new UpstreamConnectError(`${safeUrl(conn.url)} offers no tools`);
    const tools: McpTool[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const res = await client.listTools(cursor ? { cursor } : {}, { timeout: opts.timeoutMs });
      tools.push(...res.tools);
      if (tools.length > MAX_UPSTREAM_TOOLS) throw new UpstreamConnectError(`${safeUrl(conn.url)} offers more than ${MAX_UPSTREAM_TOOLS} tools`);
      cursor = res.nextCursor;
      if (!cursor) return tools;
    }
    throw new UpstreamConnectError(`${safeUrl(conn.url)} keeps paging its tool list`);
  } catch (err: unknown) {
    if (err instanceof UpstreamConnectError) throw err;
    throw new UpstreamConnectError(`cannot list the tools of ${safeUrl(conn.url)}: ${describe(err)}`, { cause: err });
  } finally {
    await disconnect(client);
  }
}

export type UpstreamCallOptions = {
  /** Wall time of the call, connecting included. */
  timeoutMs: number;
  /** A result whose JSON is larger fails with `RESULT_TOO_LARGE`, as in the sandbox. */
  maxResultBytes: number;
  /** Aborts the call (cancellation). */
  signal?: AbortSignal;
};

/** Same shape as the sandbox's result, so the worker treats both alike. */
export type UpstreamCallResult = { value: unknown; logs: string[]; runMs: number };

export type UpstreamClientsOptions = {
  /** Looks an upstream up and resolves its headers; `undefined` when it no longer exists. */
  resolve: (name: string) => Promise<UpstreamConnection | undefined>;
  logger?: Logger;
};

type Entry = { fingerprint: string; client: Promise<Client> };

/**
 * The worker side: one MCP client per upstream per process, shared by all its calls (MCP
 * multiplexes requests). A client whose transport fails is dropped, and the next call connects
 * again; a call that found its cached client broken reconnects once at once, so an upstream that
 * restarted (and forgot its session) costs no failed attempt.
 *
 * Errors are {@link ToolExecError}s: an MCP tool error (`isError`), the upstream refusing the request
 * (unknown tool, bad params) and an unreachable upstream are `TOOL_ERROR`; the deadline is `TIMEOUT`.
 * Whether they are retried follows from the code (`RETRYABLE_CODES` of `@toolplane/core`).
 */
export class UpstreamClients {
  private readonly clients = new Map<string, Entry>();

  constructor(private readonly opts: UpstreamClientsOptions) {}

  /** Calls `tool` on upstream `upstream` with already validated arguments. */
  async call(upstream: string, tool: string, args: unknown, opts: UpstreamCallOptions): Promise<UpstreamCallResult> {
    const started = performance.now();
    const deadline = AbortSignal.timeout(opts.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
    const conn = await this.opts.resolve(upstream);
    if (!conn) throw new ToolExecError('REJECTED', `upstream ${upstream} no longer exists`);
    let result: CallToolResult;
    try {
      result = await this.callOnce(upstream, conn, tool, args, signal, opts, true);
    } catch (err: unknown) {
      throw this.classify(upstream, err, opts);
    }
    if (result.isError) {
      throw new ToolExecError('TOOL_ERROR', `${upstream}.${tool}: ${contentText(result).slice(0, 2000) || 'tool error'}`);
    }
    const value = resultValue(result);
    const bytes = Buffer.byteLength(JSON.stringify(value) ?? 'null');
    if (bytes > opts.maxResultBytes) {
      throw new ToolExecError('RESULT_TOO_LARGE', `result is ${bytes} bytes, more than ${opts.maxResultBytes}`);
    }
    return { value, logs: [], runMs: performance.now() - started };
  }

  /** Closes every client (on shutdown). */
  async close(): Promise<void> {
    const entries = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(entries.map((e) => e.client.then(disconnect, () => {})));
  }

  private async callOnce(
    upstream: string,
    conn: UpstreamConnection,
    tool: string,
    args: unknown,
    signal: AbortSignal,
    opts: UpstreamCallOptions,
    mayReconnect: boolean,
  ): Promise<CallToolResult> {
    const { entry, fresh } = this.clientFor(upstream, conn, opts.timeoutMs);
    try {
      const client = await untilAborted(entry.client, signal);
      // `signal` carries the deadline; the SDK's own timeout (60s by default) is lifted to match it.
      return (await client.callTool({ name: tool, arguments: (args ?? {}) as Record<string, unknown> }, undefined, {
        signal,
        timeout: opts.timeoutMs,
      })) as CallToolResult;
    } catch (err: unknown) {
      if (!isTransportFailure(err) || signal.aborted) throw err;
      this.drop(upstream, entry);
      if (fresh || !mayReconnect) throw err;
      this.opts.logger?.info({ upstream }, 'upstream connection broken, reconnecting');
      return this.callOnce(upstream, conn, tool, args, signal, opts, false);
    }
  }

  /** The cached client, or a new one when there is none or the URL or a header value changed. */
  private clientFor(upstream: string, conn: UpstreamConnection, timeoutMs: number): { entry: Entry; fresh: boolean } {
    const fingerprint = createHash('sha256').update(JSON.stringify([conn.url, conn.headers])).digest('hex');
    const cached = this.clients.get(upstream);
    if (cached?.fingerprint === fingerprint) return { entry: cached, fresh: false };
    if (cached) this.drop(upstream, cached);
    // Connecting is not tied to this call's signal: other calls share the client, and one
    // cancellation must not break the connection for them.
    const entry: Entry = { fingerprint, client: connect(conn, { timeoutMs }) };
    entry.client.catch(() => this.drop(upstream, entry));
    this.clients.set(upstream, entry);
    return { entry, fresh: true };
  }

  private drop(upstream: string, entry: Entry): void {
    if (this.clients.get(upstream) === entry) this.clients.delete(upstream);
    void entry.client.then(disconnect, () => {});
  }

  private classify(upstream: string, err: unknown, opts: UpstreamCallOptions): ToolExecError {
    if (err instanceof ToolExecError) return err;
    if (opts.signal?.aborted) return new ToolExecError('CANCELLED', 'call was cancelled', { cause: err });
    if (isTimeout(err)) {
      return new ToolExecError('TIMEOUT', `upstream ${upstream} did not answer within ${opts.timeoutMs}ms`, { cause: err });
    }
    if (err instanceof McpError && (err.code === ErrorCode.InvalidParams || err.code === ErrorCode.MethodNotFound)) {
      // The upstream refuses this request as such (unknown tool, arguments it rejects).
      return new ToolExecError('TOOL_ERROR', `upstream ${upstream} refused the call: ${err.message}`, { cause: err });
    }
    if (err instanceof McpError) {
      return new ToolExecError('TOOL_ERROR', `upstream ${upstream} failed: ${err.message}`, { cause: err });
    }
    return new ToolExecError('TOOL_ERROR', `upstream ${upstream} unreachable: ${describe(err)}`, { cause: err });
  }
}

/** Waits for `promise` unless `signal` aborts first, then rejects with the signal's reason. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err as Error);
      },
    );
  });
}

/** Failures of the connection rather than answers of the server: worth a new client. */
function isTransportFailure(err: unknown): boolean {
  if (err instanceof McpError) return err.code === ErrorCode.ConnectionClosed;
  return true;
}

function isTimeout(err: unknown): boolean {
  if (err instanceof McpError) return err.code === ErrorCode.RequestTimeout;
  const name = (err as { name?: string })?.name;
  return name === 'TimeoutError';
}

function contentText(result: CallToolResult): string {
  return result.content
    .filter((c): c is { type: 'text'; text: string } => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

/**
 * The call's value: `structuredContent` when the upstream gives it, else the text (one string
 * when all content is text), else the content items as they came.
 */
function resultValue(result: CallToolResult): unknown {
  if (result.structuredContent !== undefined) return result.structuredContent;
  if (result.content.every((c) => c.type === 'text')) return contentText(result);
  return result.content;
}

/** The URL without query string, which may carry a token. */
function safeUrl(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

function describe(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  const cause = e?.cause?.code ?? e?.cause?.message;
  return `${e?.message ?? String(err)}${cause ? ` (${cause})` : ''}`.slice(0, 500);
}
