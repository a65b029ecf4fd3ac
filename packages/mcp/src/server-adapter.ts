import type { IncomingMessage, ServerResponse } from 'node:http';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  CallToolRequestSchema,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  type CallToolResult,
  type Tool as McpTool,
} from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from '@toolplane/core';

export type { McpTool };

/** How a tool call ended, as the catalog reports it to the MCP adapter. */
export type McpCallOutcome =
  | { ok: true; result: unknown }
  /** `code` is a stable Toolplane code (`INVALID_ARGUMENTS`, `TOOL_ERROR`, `TIMEOUT`, …). */
  | { ok: false; code: string; message: string; details?: unknown };

/**
 * What the MCP server serves: the planner implements it over its registry and queues.
 * `P` is whatever the planner's authentication returns (tenant, scopes); the adapter only passes it on.
 */
export type McpToolCatalog<P> = {
  list(principal: P): Promise<McpTool[]>;
  /**
   * Runs a call to completion. Returns `undefined` when no tool has that name (a protocol error in
   * MCP); bad arguments or a failed call are an outcome with `ok: false` (an MCP tool error).
   * `signal` aborts when the MCP client goes away or cancels the request. `meta` is the request's
   * `params._meta` (client-sent extras such as an idempotency key). `onProgress` is there when the
   * client sent a progress token: each call sends it a `notifications/progress` (fraction of 1).
   */
  call(
    principal: P,
    name: string,
    args: Record<string, unknown>,
    signal: AbortSignal,
    meta?: Record<string, unknown>,
    onProgress?: (progress: McpProgress) => void,
  ): Promise<McpCallOutcome | undefined>;
};

/** One `notifications/progress` of a `tools/call`: `progress` of `total`, increasing. */
export type McpProgress = { progress: number; total: number; message?: string };

export type McpServerAdapterOptions<P> = {
  catalog: McpToolCatalog<P>;
  /** Sent to clients in the `initialize` result. */
  serverInfo: { name: string; version: string };
  logger?: Logger;
};

/**
 * Serves a {@link McpToolCatalog} over MCP Streamable HTTP.
 *
 * The transport is stateless: every POST gets a fresh SDK server and transport and is answered
 * with plain JSON, so any planner replica behind a load balancer can answer any request, without
 * sticky sessions or session state in Redis. A `tools/call` whose client sent a progress token is
 * answered as a short SSE stream instead (still on the same request, so still stateless), which
 * carries its `notifications/progress` before the result.
 *
 * A GET opens the optional standalone SSE stream, which is held by the replica that got it; each
 * replica hears registry changes on Redis, so whichever holds a client's stream can send it
 * `notifications/tools/list_changed` ({@link McpServerAdapter.notifyToolsChanged}), if the change
 * concerns that client.
 */
export class McpServerAdapter<P> {
  /** Open notification streams, with who opened each. */
  private readonly listeners = new Map<Server, P>();
  private notifyTimer: NodeJS.Timeout | undefined;
  /** Who the pending notification is for; `'everyone'` once any change concerned everyone. */
  private audiences: Array<(principal: P) => boolean> | 'everyone' = [];

  constructor(private readonly opts: McpServerAdapterOptions<P>) {}

  /**
   * Answers one HTTP request on the MCP endpoint. `body` is the request body already parsed as
   * JSON (undefined for GET and DELETE); `principal` comes from the caller's authentication.
   */
  async handle(req: IncomingMessage, res: ServerResponse, body: unknown, principal: P): Promise<void> {
    if (req.method !== 'POST' && req.method !== 'GET') {
      // DELETE ends a session; a stateless server has none.
      res.writeHead(405, { allow: 'GET, POST', 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message: 'method not allowed' }, id: null }));
      return;
    }
    const server = this.createServer(principal);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: !wantsProgress(body) });
    res.on('close', () => {
      this.listeners.delete(server);
      // Closing aborts the signal of any handler still running, so an abandoned call stops waiting.
      void server.close().catch(() => {});
    });
    await server.connect(transport);
    if (req.method === 'GET') this.listeners.set(server, principal);
    await transport.handleRequest(req, res, body);
  }

  /**
   * Tells the clients with an open stream on this replica that the tool list changed: those whose
   * principal `audience` accepts (the tenant that owns the changed tool, and admins), or every one
   * without it. Another tenant's registry activity is none of a client's business, not even its
   * timing. Bursts (an upstream refresh registers many tools) are folded into one notification.
   */
  notifyToolsChanged(audience?: (principal: P) => boolean): void {
    if (!audience) this.audiences = 'everyone';
    else if (this.audiences !== 'everyone') this.audiences.push(audience);
    if (this.notifyTimer) return;
    this.notifyTimer = setTimeout(() => {
      this.notifyTimer = undefined;
      const audiences = this.audiences;
      this.audiences = [];
      for (const [server, principal] of this.listeners) {
        if (audiences !== 'everyone' && !audiences.some((concerns) => concerns(principal))) continue;
        server.sendToolListChanged().catch((err: unknown) => this.opts.logger?.debug({ err }, 'could not notify mcp client'));
      }
    }, NOTIFY_DEBOUNCE_MS);
    this.notifyTimer.unref();
  }

  /** Number of clients listening for notifications on this replica. */
  get listenerCount(): number {
    return this.listeners.size;
  }

  /** Ends every open stream (on shutdown). */
  async close(): Promise<void> {
    clearTimeout(this.notifyTimer);
    await Promise.all([...this.listeners.keys()].map((s) => s.close().catch(() => {})));
    this.listeners.clear();
  }

  private createServer(principal: P): Server {
    // The low-level Server, not McpServer: our tools carry JSON Schemas from the registry, while
    // McpServer wants zod schemas fixed at startup.
    const server = new Server(this.opts.serverInfo, { capabilities: { tools: { listChanged: true } } });
    server.setRequestHandler(ListToolsRequestSchema, async () => {
      try {
        return { tools: await this.opts.catalog.list(principal) };
      } catch (err: unknown) {
        throw this.protocolError(err);
      }
    });
    server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
      const { name, arguments: args = {} } = request.params;
      let outcome: McpCallOutcome | undefined;
      try {
        const token = request.params._meta?.progressToken;
        // Notifications related to this request travel on its own response stream.
        const onProgress =
          token === undefined
            ? undefined
            : (p: McpProgress) =>
                void extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, ...p } }).catch(() => {});
        outcome = await this.opts.catalog.call(principal, name, args, extra.signal, request.params._meta, onProgress);
      } catch (err: unknown) {
        throw this.protocolError(err);
      }
      if (!outcome) throw new McpError(ErrorCode.InvalidParams, `TOOL_NOT_FOUND: no tool named '${name}'`, { code: 'TOOL_NOT_FOUND' });
      return toCallToolResult(outcome);
    });
    return server;
  }

  /** Anything the catalog throws (Redis down, a refused scope) becomes a JSON-RPC error with our code kept. */
  private protocolError(err: unknown): McpError {
    if (err instanceof McpError) return err;
    const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : 'INTERNAL';
    if (code === 'INTERNAL') this.opts.logger?.error({ err }, 'mcp request failed');
    const message = code === 'INTERNAL' ? 'internal error' : (err as Error).message;
    const rpcCode = code === 'UNAUTHORIZED' || code === 'FORBIDDEN' ? ErrorCode.InvalidRequest : ErrorCode.InternalError;
    return new McpError(rpcCode, `${code}: ${message}`, { code });
  }
}

/** A `tools/call` (alone, not in a batch) with a progress token: its answer must be a stream. */
function wantsProgress(body: unknown): boolean {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const { method, params } = body as { method?: unknown; params?: { _meta?: { progressToken?: unknown } } };
  const token = params?._meta?.progressToken;
  return method === 'tools/call' && (typeof token === 'string' || typeof token === 'number');
}

/** Notifications are sent at most this often per replica. */
const NOTIFY_DEBOUNCE_MS = 100;

/**
 * A result is sent as JSON text for every client, and also as `structuredContent` when it is an
 * object (MCP requires an object there). Errors put our stable code first in the text, where an
 * LLM and a program can both read it.
 */
export function toCallToolResult(outcome: McpCallOutcome): CallToolResult {
  if (!outcome.ok) {
    const details = outcome.details === undefined ? '' : `\n${JSON.stringify(outcome.details)}`;
    return {
      isError: true,
      content: [{ type: 'text', text: `${outcome.code}: ${outcome.message}${details}` }],
      structuredContent: { error: { code: outcome.code, message: outcome.message } },
    };
  }
  const value = outcome.result;
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? 'null');
  const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
  return {
    content: [{ type: 'text', text }],
    ...(isObject ? { structuredContent: value as Record<string, unknown> } : {}),
  };
}
