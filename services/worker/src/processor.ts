import type { Job } from 'bullmq';
import { CallJobData, ToolExecError, type CallOutput, type Logger } from '@toolplane/core';
import type { ToolMetrics, CallOutcome } from '@toolplane/metrics';
import { SecretUnreadableError, type SecretStore, type ToolRegistry } from '@toolplane/queue';
import type { Sandbox } from '@toolplane/sandbox';

export type ProcessorDeps = {
  registry: ToolRegistry;
  /** Only the secrets a tool lists are read, per call, and handed to its sandbox as `ctx.secrets`. */
  secrets: SecretStore;
  sandbox: Sandbox;
  metrics: ToolMetrics;
  logger: Logger;
};

const OUTCOME: Record<string, CallOutcome> = {
  TIMEOUT: 'timeout',
  OUT_OF_MEMORY: 'oom',
  CANCELLED: 'cancelled',
  REJECTED: 'rejected',
};

/** One call: validate the job, load the exact tool version it was accepted for, run it, measure it. */
export function createProcessor(deps: ProcessorDeps) {
  return async function processCall(job: Job<CallJobData, CallOutput>, signal: AbortSignal): Promise<CallOutput> {
    const parsed = CallJobData.safeParse(job.data);
    if (!parsed.success) {
      throw new ToolExecError('REJECTED', `malformed job data: ${parsed.error.message}`, { retryable: false });
    }
    const data = parsed.data;
    const log = deps.logger.child({ callId: job.id, tool: data.tool, attempt: job.attemptsMade + 1 });
    const tool = await deps.registry.getVersion(data.tool, data.version);
    if (!tool) {
      throw new ToolExecError('REJECTED', `tool ${data.tool}@${data.version} no longer exists`, { retryable: false });
    }
    const secrets = await readGrantedSecrets(deps.secrets, tool.secrets);
    const startedAt = Date.now();
    deps.metrics.queueWait.observe({ tool: tool.name }, Math.max(0, startedAt - job.timestamp - (job.delay ?? 0)) / 1000);
    deps.metrics.active.inc({ tool: tool.name });
    try {
      const { value, logs, runMs } = await deps.sandbox.run(
        {
          key: `${tool.name}@${tool.version}`,
          code: tool.code,
          timeoutMs: tool.limits.timeoutMs,
          ...(tool.limits.cpuMs ? { cpuMs: tool.limits.cpuMs } : {}),
          memoryMb: tool.limits.memoryMb,
          maxResultBytes: tool.limits.maxResultBytes,
          egress: tool.egress,
        },
        data.arguments,
        {
          signal,
          secrets,
          // Upstream asked to slow down; the tool's rate limiter can hold back on this.
          onRetryAfter: (retryAfterMs) => log.info({ retryAfterMs }, 'upstream asked to retry later'),
        },
      );
      deps.metrics.duration.observe({ tool: tool.name }, runMs / 1000);
      deps.metrics.calls.inc({ tool: tool.name, outcome: 'success' });
      log.debug({ runMs }, 'tool call succeeded');
      return { result: value, logs };
    } catch (err: unknown) {
      deps.metrics.duration.observe({ tool: tool.name }, (Date.now() - startedAt) / 1000);
      const code = err instanceof ToolExecError ? err.code : 'SANDBOX_ERROR';
      deps.metrics.calls.inc({ tool: tool.name, outcome: OUTCOME[code] ?? 'error' });
      const retrying = err instanceof ToolExecError && err.opts.retryable && job.attemptsMade + 1 < (job.opts.attempts ?? 1);
      if (retrying) deps.metrics.retries.inc({ tool: tool.name });
      log.info({ code, retrying }, 'tool call failed');
      throw err;
    } finally {
      deps.metrics.active.dec({ tool: tool.name });
    }
  };
}

async function readGrantedSecrets(store: SecretStore, names: readonly string[]): Promise<Record<string, string>> {
  try {
    return await store.read(names);
  } catch (err: unknown) {
    // The message names the secret, never its value.
    if (err instanceof SecretUnreadableError) throw new ToolExecError('SANDBOX_ERROR', err.message, { retryable: false });
    throw err;
  }
}
