import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, runTool, test } from '@toolplane/cli/testing';

const tool = new URL('./refund.ts', import.meta.url);
const seen: Array<{ form: Record<string, string>; idempotencyKey?: string | string[] }> = [];
let server: Server;
let host: string;

// A stand-in for Stripe's /v1/refunds on loopback (opened for this test as an operator would).
beforeAll(async () => {
  server = createServer((req, res) => {
    let text = '';
    req.on('data', (d: Buffer) => (text += d.toString()));
    req.on('end', () => {
      const form = Object.fromEntries(new URLSearchParams(text));
      seen.push({ form, idempotencyKey: req.headers['idempotency-key'] });
      const declined = form.payment_intent === 'pi_refunded';
      res.writeHead(declined ? 400 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(declined ? { error: { message: 'Charge has already been refunded.' } } : { id: 're_1', status: 'succeeded', amount: Number(form.amount ?? 5000) }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const opts = (callId: string) => ({
  egress: [host],
  allowPrivateNetworks: '127.0.0.1',
  secrets: { STRIPE_API_KEY: 'sk_test_1', STRIPE_API_URL: `http://${host}` },
  call: { id: callId, attempt: 1 },
});

describe('refund_payment', () => {
  test('is registered as a tool that needs approval', async () => {
    const { definition } = await runTool(tool, { paymentIntent: 'pi_1', reason: 'duplicate' }, opts('c0'));
    expect(definition).toMatchObject({ name: 'refund_payment', requiresApproval: true, egress: ['api.stripe.com'] });
  });

  test('posts the refund form with the call id as idempotency key', async () => {
    const { value } = await runTool(tool, { paymentIntent: 'pi_42', amountCents: 1250, reason: 'requested_by_customer' }, opts('call-7'));
    expect(value).toEqual({ refund: 're_1', status: 'succeeded', amountCents: 1250 });
    expect(seen.at(-1)).toEqual({
      form: { payment_intent: 'pi_42', reason: 'requested_by_customer', amount: '1250' },
      idempotencyKey: 'toolplane-call-7',
    });
  });

  test("Stripe's refusal is a TOOL_ERROR with Stripe's message", async () => {
    await expect(runTool(tool, { paymentIntent: 'pi_refunded', reason: 'duplicate' }, opts('c2'))).rejects.toMatchObject({
      code: 'TOOL_ERROR',
      message: expect.stringContaining('Charge has already been refunded.'),
    });
  });
});
