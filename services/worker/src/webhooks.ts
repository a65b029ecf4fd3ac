import type { Job } from 'bullmq';
import { isFinished, type CallJobData, type CallOutput, type Logger } from '@toolplane/core';
import type { CallReads } from '@toolplane/queue';
import { defaultResolver, hostFetch, parseEgressRule, type NetworkList } from '@toolplane/sandbox';
import type { WebhookDeliveries, WebhookSender } from '@toolplane/webhooks';

/** Bytes of a receiver's answer read at most: only its status matters. */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * Sends deliveries through the same egress checks as a tool's `ctx.fetch`: http(s) only, no
 * credentials in the URL, DNS resolved once and the connection pinned to a checked address, and no
 * loopback, private, link-local, CGNAT or reserved address unless `allowPrivate` (the operator's
 * `TOOLPLANE_ALLOW_PRIVATE_NETWORKS`) opens it. The only host allowed is the callback URL's own;
 * redirects are not followed (a 3xx is the receiver's answer, and a failed attempt).
 */
export function egressSender(allowPrivate: NetworkList): WebhookSender {
  return async ({ url, headers, body, timeoutMs }) => {
    let host: string;
    try {
      host = new URL(url).host;
    } catch {
      return { denied: true, message: 'callbackUrl is not a URL' };
    }
    const rule = parseEgressRule(host);
    if (!rule) return { denied: true, message: 'callbackUrl has no usable host' };
    const reply = await hostFetch(
      { url, method: 'POST', headers, body },
      {
        rules: [rule],
        deadline: performance.now() + timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
        maxResponseBytes: MAX_ANSWER_BYTES,
        resolve: defaultResolver,
        allowPrivate,
        followRedirects: false,
      },
    );
    if ('status' in reply) return { status: reply.status };
    if ('denied' in reply) return { denied: true, message: reply.message };
    // An answer larger than we read is still an answer; anything else is a transport error.
    return { error: reply.error };
  };
}

/**
 * Queues the delivery of a call's final record when a call with a `callbackUrl` has finished on
 * this worker. Called on every completed and failed event: a failure that will be retried leaves
 * the call queued, and is not a finish.
 */
export async function deliverCallFinish(
  job: Job<CallJobData, CallOutput> | undefined,
  reads: Pick<CallReads, 'getHot'>,
  deliveries: Pick<WebhookDeliveries, 'enqueue'>,
  logger: Logger,
): Promise<void> {
  const url = job?.data.callbackUrl;
  if (!job?.id || !url) return;
  try {
    const record = await reads.getHot(job.id);
    if (!record || !isFinished(record.status)) return;
    await deliveries.enqueue({
      kind: 'call',
      id: record.id,
      tenant: job.data.tenant,
      url,
      data: record as unknown as Record<string, unknown>,
      finishedAt: job.finishedOn ?? Date.now(),
    });
  } catch (err: unknown) {
    logger.warn({ err: (err as Error).message, callId: job.id }, 'could not queue the webhook');
  }
}
