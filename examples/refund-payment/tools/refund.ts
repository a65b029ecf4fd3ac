import { defineTool } from '@toolplane/sdk';
import * as z from 'zod';

/**
 * Refunds a card payment through Stripe's API. Money leaves the company, so every call waits for a
 * person's approval (`POST /v1/calls/{id}/approve`) before it runs. The call id is the idempotency
 * key: a retried call can never refund twice.
 */
export default defineTool({
  name: 'refund_payment',
  description: 'Refunds all or part of a card payment (needs approval)',
  parameters: z.object({
    paymentIntent: z.string().regex(/^pi_\w+$/),
    amountCents: z.number().int().positive().max(1_000_000).optional().describe('omit for a full refund'),
    reason: z.enum(['duplicate', 'fraudulent', 'requested_by_customer']),
  }),
  requiresApproval: true,
  egress: ['api.stripe.com'],
  secrets: ['STRIPE_API_KEY', 'STRIPE_API_URL'],
  retries: { attempts: 3, backoffMs: 1000 },
  run: async ({ paymentIntent, amountCents, reason }, ctx) => {
    const key = ctx.secrets.STRIPE_API_KEY;
    if (!key) throw new Error('the secret STRIPE_API_KEY is not set: PUT /v1/secrets/STRIPE_API_KEY');
    const form = new URLSearchParams({ payment_intent: paymentIntent, reason });
    if (amountCents !== undefined) form.set('amount', String(amountCents));
    const res = await fetch(`${ctx.secrets.STRIPE_API_URL ?? 'https://api.stripe.com'}/v1/refunds`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': 'application/x-www-form-urlencoded',
        'idempotency-key': `toolplane-${ctx.callId}`,
      },
      body: form.toString(),
      signal: ctx.signal,
    });
    const reply = (await res.json()) as { id?: string; status?: string; amount?: number; error?: { message?: string } };
    if (!res.ok) throw new Error(`Stripe refused the refund (${res.status}): ${reply.error?.message ?? res.statusText}`);
    ctx.log(`refund ${reply.id} ${reply.status}`);
    return { refund: reply.id ?? null, status: reply.status ?? null, amountCents: reply.amount ?? null };
  },
});
