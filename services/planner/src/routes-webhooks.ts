import { Router } from 'express';
import { RequestError } from '@toolplane/core';
import type { WebhookKind, WebhookStatus } from '@toolplane/webhooks';
import { principalOf, requireScope } from './auth.js';
import type { PlannerDeps, WebhooksDeps } from './deps.js';

/**
 * `/v1/webhooks/secret`: the tenant's Standard Webhooks signing secret for `callbackUrl` deliveries.
 * Reading it the first time makes it; rotating replaces it, and the replaced secret keeps signing
 * (as a second signature) for the grace period, so receivers can switch over without a gap.
 */
export function webhooksRouter(deps: PlannerDeps): Router {
  const v1 = Router();
  const webhooks = (): WebhooksDeps => {
    if (!deps.webhooks) throw new RequestError('UNAVAILABLE', 'webhooks are not set up on this planner');
    return deps.webhooks;
  };

  v1.get('/webhooks/secret', requireScope('webhooks:write'), async (_req, res) => {
    res.json({ secret: await webhooks().secrets.current(principalOf(res).tenant) });
  });

  v1.post('/webhooks/secret/rotate', requireScope('webhooks:write'), async (_req, res) => {
    const { secrets, rotationGraceMs } = webhooks();
    const now = Date.now();
    const secret = await secrets.rotate(principalOf(res).tenant, now);
    res.json({ secret, ...(rotationGraceMs > 0 ? { previousValidUntil: new Date(now + rotationGraceMs).toISOString() } : {}) });
  });
  return v1;
}

/**
 * The record with its delivery so far (`webhook: {state, attempts}`) when it has a `callbackUrl`;
 * unchanged otherwise, or when webhooks are not set up here.
 */
export async function withWebhookStatus<T extends { id: string; callbackUrl?: string }>(
  deps: Pick<PlannerDeps, 'webhooks'>,
  kind: WebhookKind,
  record: T,
): Promise<T & { webhook?: WebhookStatus }> {
  if (!record.callbackUrl || !deps.webhooks) return record;
  return { ...record, webhook: await deps.webhooks.deliveries.status(kind, record.id) };
}
