import { Router } from 'express';
import { CallRequest, MAX_WAIT_MS, canSee, isRequestError, type Principal } from '@toolplane/core';
import { McpServerAdapter, type McpCallOutcome, type McpTool, type McpToolCatalog } from '@toolplane/mcp';
import { waitForCallDone } from './call-wait.js';
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

/** How long a `tools/call` is held open at most; MCP has no 202, so we wait as long as the API allows. */
const MCP_CALL_WAIT_MS = MAX_WAIT_MS;

function plannerCatalog(deps: PlannerDeps): McpToolCatalog<Principal> {
  return {
    async list(principal) {
      assertScope(principal, 'tools:read');
      // Registration refuses schemas without `"type": "object"`, which MCP requires of inputSchema.
      return (await deps.registry.list()).filter((t) => canSee(principal, t.tenant)).map((t) => mcpTool(t) as McpTool);
    },

    async call(principal, name, args, signal, meta): Promise<McpCallOutcome | undefined> {
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
      const record = await waitForCallDone(deps, id, MCP_CALL_WAIT_MS, signal, duplicate ? undefined : finished);
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
