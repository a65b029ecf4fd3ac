import { Router } from 'express';
import { z } from 'zod';
import { RequestError } from '@toolplane/core';
import type { WebhookKind, WebhookStatus } from '@toolplane/webhooks';
import type { ApiRoute } from './api-spec.js';
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

const SecretView = z.object({ secret: z.string().describe('whsec_ and the base64 of the key') });
const EXAMPLE_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

/** The routes of {@link webhooksRouter}, for the API document. */
export const webhooksApi: ApiRoute[] = [
  {
    method: 'get',
    path: '/v1/webhooks/secret',
    tag: 'webhooks',
    auth: 'webhooks:write',
    summary: "Your tenant's webhook signing secret",
    description:
      'Deliveries to a call\'s or run\'s `callbackUrl` are signed the Standard Webhooks way with it: `webhook-signature: v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">`. Made on first read.',
    responses: { 200: { description: 'the secret', schema: SecretView } },
    example: { response: { secret: EXAMPLE_SECRET } },
  },
  {
    method: 'post',
    path: '/v1/webhooks/secret/rotate',
    tag: 'webhooks',
    auth: 'webhooks:write',
    summary: 'Replace the webhook signing secret',
    description:
      'Until `previousValidUntil` deliveries carry a second signature made with the old secret, so receivers switch over without refusing one.',
    responses: { 200: { description: 'the new secret', schema: SecretView.extend({ previousValidUntil: z.iso.datetime().optional() }) } },
    example: { response: { secret: EXAMPLE_SECRET, previousValidUntil: '2026-12-01T12:00:00.000Z' } },
  },
];
