import { RequestError, canSee, isRequestError, type CallRequest, type Principal, type Tool } from '@toolplane/core';
import { isRedisUnavailable, type Wait } from '@toolplane/queue';
import { injectTraceContext } from '@toolplane/tracing';
import type { PlannerDeps } from './deps.js';
import { toolNotFound } from './http-util.js';

/** What {@link submitCall} needs: the registry, validation, the queues and the enqueue counter. */
export type SubmitDeps = Pick<PlannerDeps, 'registry' | 'calls' | 'validator' | 'waiter' | 'httpMetrics'>;

/** The per-call options every entry point may pass; the same names as the `POST /v1/calls` body. */
export type SubmitOptions = Partial<Pick<CallRequest, 'idempotencyKey' | 'priority' | 'delayMs' | 'deadlineMs' | 'version' | 'callbackUrl'>> & {
  /**
   * Listen for the call's finish before it is enqueued (so the finish cannot be missed), for at
   * most `timeoutMs` or until `signal` aborts. The listener comes back as {@link AcceptedCall.finished}.
   */
  watch?: { timeoutMs: number; signal: AbortSignal };
};

/** A call the queues accepted. */
export type AcceptedCall = {
  id: string;
  /** The version of the tool the call runs (the pinned one, or the current one). */
  tool: Tool;
  /** The idempotency key named a call that already existed: nothing new was enqueued. */
  duplicate: boolean;
  /** Present when `watch` was asked for: resolves `true` when the call is announced finished. */
  finished?: Wait;
};

/**
 * The one way a call is submitted, whoever submits it (`POST /v1/calls`, MCP `tools/call`, agent
 * runs, schedules): the tool is looked up and must be visible to the principal (another tenant's
 * tool is `TOOL_NOT_FOUND`, exactly like a missing one), enabled, at the pinned version if one is
 * named; the arguments are validated against that version's schema; the call is enqueued with its
 * idempotency key and the current trace context, and counted once in `toolplane_calls_enqueued_total`
 * (a duplicate is not a new call, so it is not counted).
 *
 * Every refusal is a {@link RequestError} with a stable code; a Redis that cannot be reached is
 * `UNAVAILABLE`. Entry points only translate that error into their own protocol.
 */
export async function submitCall(
  deps: SubmitDeps,
  principal: Principal,
  toolName: string,
  args: unknown,
  options: SubmitOptions = {},
): Promise<AcceptedCall> {
  try {
    const tool = await resolveTool(deps, principal, toolName, options.version);
    deps.validator.validate(tool, args);
    const id = deps.calls.producer.callId(tool.name, {
      tenant: principal.tenant,
      ...(options.idempotencyKey ? { idempotencyKey: options.idempotencyKey } : {}),
    });
    // Listening before the call exists: its finish cannot be announced before we hear.
    const finished = options.watch ? deps.waiter.wait(id, options.watch.timeoutMs, options.watch.signal) : undefined;
    let duplicate: boolean;
    try {
      ({ duplicate } = await deps.calls.producer.enqueue(tool, args, {
        id,
        tenant: principal.tenant,
        trace: injectTraceContext(),
        ...(options.idempotencyKey ? { idempotencyKey: options.idempotencyKey } : {}),
        ...(options.priority ? { priority: options.priority } : {}),
        ...(options.delayMs ? { delayMs: options.delayMs } : {}),
        ...(options.deadlineMs ? { deadlineMs: options.deadlineMs } : {}),
        ...(options.callbackUrl ? { callbackUrl: options.callbackUrl } : {}),
        ...(finished ? { awaited: true } : {}),
      }));
    } catch (err: unknown) {
      finished?.cancel();
      throw err;
    }
    if (!duplicate) deps.httpMetrics.enqueued.inc({ tool: tool.name });
    return { id, tool, duplicate, ...(finished ? { finished } : {}) };
  } catch (err: unknown) {
    if (!isRequestError(err) && isRedisUnavailable(err)) {
      throw new RequestError('UNAVAILABLE', 'the queue store is unreachable; retry later', undefined, { cause: err });
    }
    throw err;
  }
}

/** The tool version a call of `name` runs, if the principal may call it. */
async function resolveTool(deps: SubmitDeps, principal: Principal, name: string, version: number | undefined): Promise<Tool> {
  // The current version decides existence, ownership and the operator's switch, pinned or not: a
  // deleted tool cannot be called through an old version, and a name taken over by another tenant
  // never hands out the previous owner's versions.
  const current = await deps.registry.get(name);
  if (!current || !canSee(principal, current.tenant)) throw toolNotFound(name);
  if (current.enabled === false) throw new RequestError('UNAVAILABLE', `tool '${name}' is disabled by an operator`);
  if (version === undefined || version === current.version) return current;
  const pinned = await deps.registry.getVersion(name, version);
  if (!pinned || pinned.tenant !== current.tenant) {
    throw new RequestError('TOOL_NOT_FOUND', `tool '${name}' has no version ${version} (see GET /v1/tools/${name}/versions)`, {
      tool: name,
      version,
      currentVersion: current.version,
    });
  }
  return pinned;
}
