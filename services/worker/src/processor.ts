import { DelayedError, Worker, type Job } from 'bullmq';
import { ToolExecError, hashArguments, readCallJobData, toPublicFailure, type CallJobData, type CallOutput, type Logger, type Tool } from '@toolplane/core';
import type { ToolMetrics, CallOutcome } from '@toolplane/metrics';
import {
  SecretUnreadableError,
  TrialFailedError,
  type CallActions,
  type CallEventLog,
  type CallGate,
  type Keys,
  type RedisConnection,
  type SecretStore,
  type ToolBreakers,
  type ToolQueueCache,
  type ToolRegistry,
} from '@toolplane/queue';
import type { UpstreamClients } from '@toolplane/mcp';
import type { SandboxFleet, ToolSource } from '@toolplane/sandbox';
import { deadlineMessage, deferCall, isPastDeadline, type HoldKind } from './deadline.js';

export type ProcessorDeps = {
  registry: ToolRegistry;
  queues: ToolQueueCache;
  /** The approval grants of calls of tools that need approval. */
  actions: Pick<CallActions, 'approvalGrant'>;
  gate: CallGate;
  breakers: ToolBreakers;
  /** Only the secrets a tool lists are read, per call, and handed to its sandbox as `ctx.secrets`. */
  secrets: SecretStore;
  sandbox: SandboxFleet;
  /** Runs the tools of MCP upstreams (`tool.upstream`) instead of the sandbox. */
  upstreams: UpstreamClients;
  metrics: ToolMetrics;
  /** Where `ctx.progress` reports go (`GET /v1/calls/{id}/events`); a call that reports none writes nothing there. */
  callEvents: CallEventLog;
  redis: RedisConnection;
  keys: Keys;
  logger: Logger;
};

const OUTCOME: Record<string, CallOutcome> = {
  TIMEOUT: 'timeout',
  OUT_OF_MEMORY: 'oom',
  CANCELLED: 'cancelled',
  REJECTED: 'rejected',
  POISONED: 'poisoned',
  DEADLINE_EXCEEDED: 'deadline_exceeded',
};

/**
 * One call: validate the job, load the exact tool version it was accepted for, pass the fleet-wide
 * gate (cancel, breaker, rate limits), answer from the result cache or run it in the sandbox.
 * A call held back by a limit or an open breaker is put back (delayed), never failed, unless it
 * would wait past its deadline (`deadline.ts`): then it ends `DEADLINE_EXCEEDED`.
 */
export function createProcessor(deps: ProcessorDeps) {
  return async function processCall(
    job: Job<CallJobData, CallOutput>,
    token: string | undefined,
    signal: AbortSignal,
  ): Promise<CallOutput> {
    const parsed = readCallJobData(job.data);
    if (!parsed.ok) throw new ToolExecError('REJECTED', `malformed job data: ${parsed.message}`);
    const data = parsed.data;
    // Made when first needed: most calls log nothing at the service's level, and a child logger per call showed in the profile.
    let callLog: Logger | undefined;
    const log = (): Logger => (callLog ??= deps.logger.child({ callId: job.id, tool: data.tool, attempt: job.attemptsMade + 1 }));
    // Late before it even reaches the gate: it never runs and the breaker never hears of it.
    if (isPastDeadline(data.deadlineAt, Date.now())) expire(deps, data, log());
    /** How long to hold the call back (at most until its deadline); ends it if it cannot start in time. */
    const holdBack = (waitMs: number, kind: HoldKind): number => {
      const deferral = deferCall(data.deadlineAt, Date.now(), waitMs, kind);
      if (deferral.action === 'expire') expire(deps, data, log());
      return deferral.waitMs;
    };
    const tool = await deps.registry.getVersion(data.tool, data.version);
    if (!tool) {
      // Its tool was deleted and settled while the call was on its way in: what the call leaves must
      // still be archived and its queue forgotten, so the name goes back on the deleted list.
      await deps.registry.relistDeleted(data.tool).catch(() => {});
      throw new ToolExecError('REJECTED', `tool ${data.tool}@${data.version} no longer exists`);
    }
    if (tool.requiresApproval) await checkApproval(deps, tool, job.id!, data);

    const admission = await deps.gate.admit(tool, job.id!, data.tenant, tool.tenantRateLimit);
    deps.breakers.noteAdmission(tool.name, admission.verdict);
    switch (admission.verdict) {
      case 'cancelled':
        throw new ToolExecError('CANCELLED', 'call was cancelled');
      case 'open':
      case 'busy_trial': {
        const waitMs = holdBack(admission.waitMs, 'delay');
        deps.metrics.calls.inc({ tool: tool.name, outcome: 'circuit_open' });
        return putBack(job, token, waitMs);
      }
      case 'hold':
      case 'tool_limit':
        holdBack(admission.waitMs, 'pause');
        deps.metrics.calls.inc({ tool: tool.name, outcome: 'rate_limited' });
        deps.metrics.rateLimited.inc({ tool: tool.name, scope: 'tool' });
        // Pauses this tool's queue for every worker until a slot frees up; other tools go on.
        await deps.queues.queue(tool.name).rateLimit(admission.waitMs);
        throw Worker.RateLimitError();
      case 'tenant_limit': {
        const waitMs = holdBack(admission.waitMs, 'delay');
        deps.metrics.calls.inc({ tool: tool.name, outcome: 'rate_limited' });
        deps.metrics.rateLimited.inc({ tool: tool.name, scope: 'tenant' });
        return putBack(job, token, waitMs);
      }
      case 'run':
      case 'trial':
        break;
    }
    const startedAt = admission.nowMs;
    const pass = admission.verdict;
    deps.metrics.queueWait.observe({ tool: tool.name }, Math.max(0, startedAt - job.timestamp - (job.delay ?? 0)) / 1000);

    let cacheKey: string | undefined;
    let secrets: Record<string, string>;
    try {
      // A tool that reads secrets may answer differently once one is rotated: the cache key covers
      // the versions of the secrets it reads as well as the tool version and the arguments.
      const secretsVersion = tool.cacheTtlMs > 0 ? await deps.secrets.version(tool.tenant, tool.secrets) : '';
      cacheKey = tool.cacheTtlMs > 0 ? deps.keys.resultCache(tool.name, tool.version, cacheDigest(data.argsHash, secretsVersion)) : undefined;
      if (cacheKey) {
        const hit = await deps.redis.get(cacheKey);
        if (hit !== null) {
          await deps.breakers.notRun(tool, pass);
          deps.metrics.calls.inc({ tool: tool.name, outcome: 'success' });
          return { result: JSON.parse(hit) as unknown, logs: [], cached: true, startedAt };
        }
      }
      // Read after the cache: a cached answer needs no secrets.
      secrets = await readGrantedSecrets(deps.secrets, tool.tenant, tool.secrets);
    } catch (err: unknown) {
      // Failed before the tool ran: a trial's token goes back at once instead of at its expiry.
      await deps.breakers.notRun(tool, pass).catch(() => {});
      throw err;
    }
    deps.metrics.active.inc({ tool: tool.name });
    try {
      const { value, logs, runMs } = await deps.breakers.run(tool, pass, () =>
        tool.upstream
          ? deps.upstreams.call(tool.upstream.name, tool.upstream.tool, data.arguments, {
              timeoutMs: tool.limits.timeoutMs,
              maxResultBytes: tool.limits.maxResultBytes,
              signal,
            })
          : deps.sandbox.run(
          sandboxSource(tool),
          data.arguments,
          {
            signal,
            secrets,
            call: { id: String(job.id), attempt: job.attemptsMade + 1 },
            onProgress: deps.callEvents.writer(tool.name, String(job.id), job.attemptsMade + 1, tool.limits.timeoutMs),
            // A downstream asked to slow down: hold the whole tool back, fleet-wide, for that long.
            onRetryAfter: (retryAfterMs) => {
              log().info({ retryAfterMs }, 'downstream asked to retry later');
              deps.gate.hold(tool.name, retryAfterMs).catch(() => {});
            },
          },
        ),
      );
      if (cacheKey) await deps.redis.set(cacheKey, JSON.stringify(value ?? null), 'PX', tool.cacheTtlMs);
      deps.metrics.duration.observe({ tool: tool.name }, runMs / 1000);
      deps.metrics.calls.inc({ tool: tool.name, outcome: 'success' });
      if (deps.logger.isLevelEnabled('debug')) log().debug({ runMs }, 'tool call succeeded');
      return { result: value, logs, startedAt };
    } catch (err: unknown) {
      deps.metrics.duration.observe({ tool: tool.name }, (Date.now() - startedAt) / 1000);
      // The same mapping BullMQ's side applies (`toBullProcessor`): what is retried here is retried there.
      const { code, retryable } = toPublicFailure(err);
      deps.metrics.calls.inc({ tool: tool.name, outcome: OUTCOME[code] ?? 'error' });
      if (err instanceof TrialFailedError) {
        // A failed trial says the tool is still down, not that this call is bad: it waits out the
        // new open period like every other held call, without using up an attempt.
        log().info({ code }, 'half-open trial failed: the call waits for the next trial');
        return putBack(job, token, holdBack(err.waitMs, 'delay'));
      }
      const retrying = retryable && job.attemptsMade + 1 < (job.opts.attempts ?? 1);
      // No retry for a late call; the attempt's own failure has been counted (and seen by the breaker).
      if (retrying && isPastDeadline(data.deadlineAt, Date.now())) expire(deps, data, log(), err);
      if (retrying) deps.metrics.retries.inc({ tool: tool.name });
      log().info({ code, retrying }, 'tool call failed');
      throw err;
    } finally {
      deps.metrics.active.dec({ tool: tool.name });
    }
  };
}

/** What the sandbox runs of a tool version; made once per version (the registry keeps one object per version). */
const sources = new WeakMap<Tool, ToolSource>();

function sandboxSource(tool: Tool): ToolSource {
  let source = sources.get(tool);
  if (!source) {
    source = {
      key: `${tool.name}@${tool.version}`,
      code: tool.code,
      timeoutMs: tool.limits.timeoutMs,
      ...(tool.limits.cpuMs ? { cpuMs: tool.limits.cpuMs } : {}),
      memoryMb: tool.limits.memoryMb,
      maxResultBytes: tool.limits.maxResultBytes,
      egress: tool.egress,
      ...(tool.sourceMap ? { sourceMap: tool.sourceMap } : {}),
      ...(tool.isolation ? { isolation: tool.isolation } : {}),
    };
    sources.set(tool, source);
  }
  return source;
}

/** Ends a call that is still waiting (or would retry) past its deadline: `DEADLINE_EXCEEDED`, no further attempt. */
function expire(deps: ProcessorDeps, data: CallJobData, log: Logger, cause?: unknown): never {
  deps.metrics.calls.inc({ tool: data.tool, outcome: 'deadline_exceeded' });
  log.info({ deadlineAt: data.deadlineAt }, 'call deadline exceeded');
  const message = deadlineMessage(data.deadlineAt ?? Date.now(), cause instanceof Error ? cause.message : undefined);
  throw new ToolExecError('DEADLINE_EXCEEDED', message, { cause });
}

/** Puts the call back on its queue to run after `waitMs`, without using up an attempt. */
async function putBack(job: Job, token: string | undefined, waitMs: number): Promise<never> {
  await job.moveToDelayed(Date.now() + Math.max(1, waitMs), token);
  throw new DelayedError();
}

/** A call of a tool that needs approval runs only with a grant for exactly its arguments. */
async function checkApproval(deps: ProcessorDeps, tool: Tool, id: string, data: CallJobData): Promise<void> {
  const grant = await deps.actions.approvalGrant(tool.name, id);
  if (grant === null || grant !== data.argsHash || hashArguments(data.arguments) !== grant) {
    throw new ToolExecError('REJECTED', 'call was not approved for these arguments');
  }
}

/** The argument hash, joined with the version of the tool's secrets when it reads any. */
function cacheDigest(argsHash: string, secretsVersion: string): string {
  return secretsVersion === '' ? argsHash : `${argsHash}.${secretsVersion}`;
}

async function readGrantedSecrets(store: SecretStore, tenant: string, names: readonly string[]): Promise<Record<string, string>> {
  try {
    return await store.read(tenant, names);
  } catch (err: unknown) {
    // The message names the secret, never its value.
    if (err instanceof SecretUnreadableError) throw new ToolExecError('SANDBOX_ERROR', err.message);
    throw err;
  }
}
