import { SpanKind, SpanStatusCode, trace, type Attributes } from '@opentelemetry/api';
import { DelayedError, RateLimitError, type Job } from 'bullmq';
import { CallJobData, toPublicFailure, type CallOutput } from '@toolplane/core';
import { TRACER_NAME, extractTraceContext } from '@toolplane/tracing';
import type { createProcessor } from './processor.js';

type Processor = ReturnType<typeof createProcessor>;

/** `toolplane.outcome` of a failed call, by error code; like the `outcome` label of the metrics. */
const OUTCOME: Record<string, string> = { TIMEOUT: 'timeout', OUT_OF_MEMORY: 'oom', CANCELLED: 'cancelled', REJECTED: 'rejected' };

/**
 * Runs each take-up of a call in a CONSUMER span `tool.call`, child of the span that enqueued it (the
 * `trace` of its job data), so the sandbox's spans join the request's trace. Attributes: tool,
 * version, call id, attempt and outcome; never arguments or results.
 */
export function traceCalls(processor: Processor): Processor {
  const tracer = trace.getTracer(TRACER_NAME);
  return (job: Job<CallJobData, CallOutput>, token: string | undefined, signal: AbortSignal) => {
    // Job data is untrusted until the processor validates it; the schema drops a malformed trace.
    const data = (job.data ?? {}) as Partial<CallJobData>;
    const parent = extractTraceContext(CallJobData.shape.trace.parse(data.trace));
    const attributes: Attributes = { 'toolplane.call_id': String(job.id), 'toolplane.attempt': job.attemptsMade + 1 };
    if (typeof data.tool === 'string') attributes['toolplane.tool'] = data.tool;
    if (typeof data.version === 'number') attributes['toolplane.tool.version'] = data.version;
    return tracer.startActiveSpan('tool.call', { kind: SpanKind.CONSUMER, attributes }, parent, async (span) => {
      try {
        const output = await processor(job, token, signal);
        span.setAttribute('toolplane.outcome', output.cached ? 'cached' : 'success');
        return output;
      } catch (err: unknown) {
        if (err instanceof DelayedError) span.setAttribute('toolplane.outcome', 'delayed');
        else if (err instanceof RateLimitError) span.setAttribute('toolplane.outcome', 'rate_limited');
        else {
          // The code only: messages can quote the tool's arguments.
          const { code } = toPublicFailure(err);
          span.setAttributes({ 'toolplane.outcome': OUTCOME[code] ?? 'error', 'toolplane.error.code': code });
          span.setStatus({ code: SpanStatusCode.ERROR, message: code });
        }
        throw err;
      } finally {
        span.end();
      }
    });
  };
}
