import { setTimeout } from 'node:timers/promises';
import { Router } from 'express';
import { z } from 'zod';
import { CallRequest, MAX_WAIT_MS, canSee, isFinished, isRequestError, type CallRecord, type Principal } from '@toolplane/core';
import { McpServerAdapter, type McpCallOutcome, type McpProgress, type McpTool, type McpToolCatalog } from '@toolplane/mcp';
import { CallEventLog } from '@toolplane/queue';
import type { ApiRoute } from './api-spec.js';
import { waitForCallDone } from './call-wait.js';
import { followCall } from './call-events.js';
import type { PlannerDeps } from './deps.js';
import { assertScope, principalOf } from './auth.js';
import { submitCall, type AcceptedCall } from './submit-call.js';
import { mcpTool } from './tool-formats.js';

/** Where the MCP endpoint is mounted. */
export const MCP_PATH = '/mcp';

/**
 * `/mcp`: the registry's tools over MCP Streamable HTTP (stateless, see {@link McpServerAdapter}).
 * A `tools/call` goes through {@link submitCall} like `POST /v1/calls` and is answered when it finishes.
 */
export function mcpRouter(deps: PlannerDeps): Router {
  const adapter = new McpServerAdapter<Principal>({
    catalog: plannerCatalog(deps),
    serverInfo: { name: 'toolplane', version: '0.1.0' },
    logger: deps.logger.child({ component: 'mcp' }),
  });
  // Only clients that can see the changed tool hear of it. An unknown owner (or a failed look-up)
  // tells nobody: a missed notice costs a client a refresh, a wrong one would leak another tenant's activity.
  deps.events?.on('toolsChanged', (tool) => {
    void deps.registry.ownerOf(tool).then(
      (owner) => {
        if (owner !== undefined) adapter.notifyToolsChanged((principal) => canSee(principal, owner));
      },
      (err: unknown) => deps.logger.debug({ err, tool }, 'tool owner look-up failed'),
    );
  });
  // Open notification streams would otherwise hold the HTTP server open for the whole shutdown grace.
  deps.events?.on('shutdown', () => void adapter.close());

  const router = Router();
  router.all(MCP_PATH, async (req, res) => {
    await adapter.handle(req, res, req.body, principalOf(res));
  });
  return router;
}

/**
 * MCP has no field for an idempotency key: a client that retries a `tools/call` sends one in the
 * request's `_meta` under this name, with the same meaning as `idempotencyKey` in `POST /v1/calls`.
 */
export const MCP_IDEMPOTENCY_META_KEY = 'io.toolplane/idempotencyKey';

function idempotencyKeyOf(meta: Record<string, unknown> | undefined): string | undefined {
  const key = CallRequest.shape.idempotencyKey.safeParse(meta?.[MCP_IDEMPOTENCY_META_KEY]);
  return key.success ? key.data : undefined;
}

/** How long a finished call's answer waits for its last progress reports to be forwarded, at most. */
const PROGRESS_DRAIN_MS = 1_000;

/** How long a `tools/call` is held open at most; MCP has no 202, so we wait as long as the API allows. */
const MCP_CALL_WAIT_MS = MAX_WAIT_MS;

function plannerCatalog(deps: PlannerDeps): McpToolCatalog<Principal> {
  const events = new CallEventLog(deps.redis, deps.keys);
  return {
    async list(principal) {
      assertScope(principal, 'tools:read');
      // Registration refuses schemas without `"type": "object"`, which MCP requires of inputSchema.
      return (await deps.registry.list()).filter((t) => canSee(principal, t.tenant)).map((t) => mcpTool(t) as McpTool);
    },

    async call(principal, name, args, signal, meta, onProgress): Promise<McpCallOutcome | undefined> {
      assertScope(principal, 'calls:write');
      const idempotencyKey = idempotencyKeyOf(meta);
      let accepted: AcceptedCall;
      try {
        accepted = await submitCall(deps, principal, name, args, {
          ...(idempotencyKey ? { idempotencyKey } : {}),
          watch: { timeoutMs: MCP_CALL_WAIT_MS, signal },
        });
      } catch (err: unknown) {
        if (!isRequestError(err)) throw err;
        // An unknown tool is a protocol error in MCP; every other refusal (bad arguments, a tenant
        // ceiling, Redis down) is the call's outcome, as the model should read it.
        if (err.code === 'TOOL_NOT_FOUND') return undefined;
        return { ok: false, code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) };
      }
      const { id, duplicate, finished } = accepted;
      // A duplicate may have finished long ago: nobody will announce it again, so read it first.
      if (duplicate) finished?.cancel();
      const watching = new AbortController();
      const forwarding = onProgress ? forwardProgress(deps, events, id, AbortSignal.any([signal, watching.signal]), onProgress) : undefined;
      let record: CallRecord | undefined;
      try {
        record = await waitForCallDone(deps, id, MCP_CALL_WAIT_MS, signal, duplicate ? undefined : finished);
        // The answer comes after the progress that preceded it: the finish is often known before the
        // last reports are read (its announcement carries the record), and the forwarder ends by itself
        // once it has read them and the finish.
        if (forwarding && record && isFinished(record.status)) {
          await Promise.race([forwarding, setTimeout(PROGRESS_DRAIN_MS, undefined, { signal: watching.signal }).catch(() => {})]);
        }
      } finally {
        // Only a forwarder and its drain timer listen; `abort()` builds a DOMException with a stack.
        if (forwarding) watching.abort();
      }
      switch (record?.status) {
        case 'succeeded':
          return { ok: true, result: record.result };
        case 'failed':
        case 'cancelled':
          return {
            ok: false,
            code: record.error?.code ?? (record.status === 'cancelled' ? 'CANCELLED' : 'TOOL_ERROR'),
            message: `${record.error?.message ?? `call ${record.status}`} (call ${id})`,
          };
        case 'queued':
        case 'running':
        case 'awaiting_approval':
        case undefined:
          // The call goes on and can be read over the API.
          return {
            ok: false,
            code: 'TIMEOUT',
            message: `call ${id} is still ${record?.status ?? 'queued'}; read it with GET /v1/calls/${id}`,
          };
      }
    },
  };
}

/**
 * The call's `ctx.progress` reports as MCP progress (of a total of 1) until `signal`. MCP wants each
 * notification's progress above the last, so a retry's restart from 0 is not sent until it passes it.
 */
async function forwardProgress(deps: PlannerDeps, events: CallEventLog, id: string, signal: AbortSignal, onProgress: (p: McpProgress) => void): Promise<void> {
  let last = -1;
  try {
    const record = await deps.calls.reads.get(id);
    if (!record) return;
    for await (const e of followCall({ reads: deps.calls.reads, waiter: deps.waiter, log: events }, record, undefined, signal)) {
      if (e?.type !== 'progress' || e.data.fraction <= last) continue;
      last = e.data.fraction;
      onProgress({ progress: e.data.fraction, total: 1, ...(e.data.message ? { message: e.data.message } : {}) });
    }
  } catch (err: unknown) {
    // Progress is a courtesy: the call's answer comes whatever happens here.
    deps.logger.debug({ err, callId: id }, 'mcp progress forwarding stopped');
  }
}

/** The MCP endpoint, for the API document: JSON-RPC 2.0 over Streamable HTTP (stateless). */
export const mcpApi: ApiRoute[] = [
  {
    method: 'post',
    path: MCP_PATH,
    tag: 'mcp',
    auth: 'authenticated',
    summary: 'MCP JSON-RPC request (initialize, tools/list, tools/call, …)',
    description:
      '`tools/list` needs the `tools:read` scope and `tools/call` the `calls:write` scope; a call is held until it finishes ' +
      `(up to ${MAX_WAIT_MS} ms). \`params._meta["${MCP_IDEMPOTENCY_META_KEY}"]\` is the call's idempotency key. ` +
      'Refusals and failed calls are tool results with `isError` and the stable code first in the text.',
    body: z.looseObject({ jsonrpc: z.literal('2.0'), method: z.string(), id: z.union([z.string(), z.number()]).optional(), params: z.unknown().optional() }),
    responses: {
      200: { description: 'the JSON-RPC response', schema: z.looseObject({ jsonrpc: z.literal('2.0') }) },
      202: { description: 'a notification was accepted' },
    },
    example: {
      request: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'add', arguments: { a: 2, b: 3 } } },
      response: { jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: '5' }], structuredContent: { result: 5 } } },
    },
  },
  {
    method: 'get',
    path: MCP_PATH,
    tag: 'mcp',
    auth: 'authenticated',
    summary: 'MCP notification stream (server-sent events: notifications/tools/list_changed)',
    responses: { 200: { description: 'an event stream', contentType: 'text/event-stream' } },
    example: { response: 'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n\n' },
  },
];
