import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, test } from 'vitest';
import { WebhookDeliveries, type WebhookSender } from './deliveries.js';
import { createWebhookKeys } from './keys.js';
import { WebhookSecrets } from './secrets.js';
import { verifyWebhook } from './signature.js';
import { sharedRedis, freshPrefix } from '../../../test/support/redis.js';

const redis = sharedRedis();

const freshKeys = () => createWebhookKeys(freshPrefix('w'));

type Received = { headers: IncomingHttpHeaders; body: string; at: number };

/** A receiver on loopback that answers the statuses given, in order (the last one from then on). */
async function receiver(statuses: number[]): Promise<{ url: string; got: Received[]; next: () => Promise<Received>; close: () => Promise<void> }> {
  const got: Received[] = [];
  const waiting: Array<(r: Received) => void> = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = { headers: req.headers, body: Buffer.concat(chunks).toString(), at: Date.now() };
      got.push(r);
      res.statusCode = statuses[Math.min(got.length - 1, statuses.length - 1)]!;
      res.end();
      waiting.shift()?.(r);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  let read = 0;
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    got,
    next: () => (read < got.length ? Promise.resolve(got[read++]!) : new Promise((r) => waiting.push((x) => (read++, r(x))))),
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** A plain sender for these tests; the worker service gives the egress-checked one. */
const plainSend: WebhookSender = async ({ url, headers, body, timeoutMs }) => {
  const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(timeoutMs) });
  await res.arrayBuffer();
  return { status: res.status };
};

describe('webhook secrets', () => {
  test('made on first read, one per tenant, the same on every read', async () => {
    const secrets = new WebhookSecrets(redis, freshKeys());
    const [a1, a2] = await Promise.all([secrets.current('a'), secrets.current('a')]);
    expect(a1).toMatch(/^whsec_/);
    expect(a2).toBe(a1);
    expect(await secrets.current('a')).toBe(a1);
    expect(await secrets.current('b')).not.toBe(a1);
  });

  test('a rotation replaces the secret; the old one keeps signing for the grace period only', async () => {
    const secrets = new WebhookSecrets(redis, freshKeys(), { rotationGraceMs: 60_000 });
    const old = await secrets.current('a');
    const now = Date.now();
    const fresh = await secrets.rotate('a', now);
    expect(fresh).not.toBe(old);
    expect(await secrets.current('a')).toBe(fresh);
    expect(await secrets.signing('a', now + 1_000)).toEqual([fresh, old]);
    expect(await secrets.signing('a', now + 60_001)).toEqual([fresh]);
    // Without a grace period the old secret ends at once.
    const strict = new WebhookSecrets(redis, freshKeys(), { rotationGraceMs: 0 });
    await strict.current('a');
    const only = await strict.rotate('a');
    expect(await strict.signing('a')).toEqual([only]);
  });
});

describe('webhook deliveries', () => {
  test('POSTs the signed envelope, retries a 500 with growing delays, and logs every attempt', async () => {
    const keys = freshKeys();
    const secrets = new WebhookSecrets(redis, keys);
    const deliveries = new WebhookDeliveries(redis, keys, { maxAttempts: 5, backoffMs: 100 });
    const hook = await receiver([500, 500, 204]);
    const worker = deliveries.startWorker({ connection: redis, secrets, send: plainSend });
    try {
      const finishedAt = Date.now();
      const webhookId = await deliveries.enqueue({ kind: 'call', id: 'c1', tenant: 't1', url: hook.url, data: { id: 'c1', status: 'succeeded', result: 5 }, finishedAt });
      // Queued twice (two finish events of one call): still one delivery.
      expect(await deliveries.enqueue({ kind: 'call', id: 'c1', tenant: 't1', url: hook.url, data: { id: 'c1' }, finishedAt })).toBe(webhookId);
      const first = await hook.next();
      await hook.next();
      const third = await hook.next();
      const secret = await secrets.current('t1');
      for (const r of [first, third]) {
        expect(r.headers['webhook-id']).toBe(webhookId);
        expect(r.headers['content-type']).toBe('application/json');
        expect(verifyWebhook(secret, r.headers, r.body)).toBe(true);
        expect(verifyWebhook(await new WebhookSecrets(redis, freshKeys()).current('t1'), r.headers, r.body)).toBe(false);
      }
      expect(JSON.parse(first.body)).toEqual({ type: 'call.finished', timestamp: new Date(finishedAt).toISOString(), data: { id: 'c1', status: 'succeeded', result: 5 } });
      // Exponential backoff: 100 ms, then 200 ms.
      expect(hook.got[1]!.at - hook.got[0]!.at).toBeGreaterThanOrEqual(90);
      expect(hook.got[2]!.at - hook.got[1]!.at).toBeGreaterThanOrEqual(190);
      await expect.poll(async () => (await deliveries.status('call', 'c1')).state).toBe('delivered');
      const status = await deliveries.status('call', 'c1');
      expect(status.attempts.map((a) => [a.status, a.error])).toEqual([
        [500, 'receiver answered 500'],
        [500, 'receiver answered 500'],
        [204, undefined],
      ]);
      expect(hook.got).toHaveLength(3);
    } finally {
      await worker.close();
      await deliveries.close();
      await hook.close();
    }
  });

  test('gives up after the last attempt, and never retries a URL the egress rules refuse', async () => {
    const keys = freshKeys();
    const secrets = new WebhookSecrets(redis, keys);
    const deliveries = new WebhookDeliveries(redis, keys, { maxAttempts: 2, backoffMs: 50 });
    const hook = await receiver([503]);
    let refused = 0;
    const send: WebhookSender = async (req) => {
      if (req.url.includes('refused')) {
        refused++;
        return { denied: true, message: '10.0.0.1 is a private or loopback address the operator has not opened' };
      }
      return plainSend(req);
    };
    const worker = deliveries.startWorker({ connection: redis, secrets, send });
    try {
      await deliveries.enqueue({ kind: 'run', id: 'r1', tenant: 't1', url: hook.url, data: { id: 'r1' }, finishedAt: 1 });
      await deliveries.enqueue({ kind: 'call', id: 'c2', tenant: 't1', url: 'http://refused.example/', data: { id: 'c2' }, finishedAt: 1 });
      await expect.poll(async () => (await deliveries.status('run', 'r1')).state, { timeout: 5_000 }).toBe('failed');
      expect((await deliveries.status('run', 'r1')).attempts.map((a) => a.status)).toEqual([503, 503]);
      await expect.poll(async () => (await deliveries.status('call', 'c2')).state, { timeout: 5_000 }).toBe('failed');
      const c2 = await deliveries.status('call', 'c2');
      expect(c2.attempts).toHaveLength(1);
      expect(c2.attempts[0]!.error).toMatch(/^refused by the egress rules: /);
      expect(refused).toBe(1);
      expect(JSON.parse(hook.got[0]!.body).type).toBe('run.finished');
    } finally {
      await worker.close();
      await deliveries.close();
      await hook.close();
    }
  });

  test('a record too large to send is sent without its large fields, marked truncated', async () => {
    const keys = freshKeys();
    const deliveries = new WebhookDeliveries(redis, keys, { maxBodyBytes: 4_096 });
    const hook = await receiver([200]);
    const worker = deliveries.startWorker({ connection: redis, secrets: new WebhookSecrets(redis, keys), send: plainSend });
    try {
      await deliveries.enqueue({ kind: 'call', id: 'c3', tenant: 't1', url: hook.url, data: { id: 'c3', status: 'succeeded', result: 'x'.repeat(10_000) }, finishedAt: 1 });
      const body = JSON.parse((await hook.next()).body) as { data: Record<string, unknown> };
      expect(body.data).toEqual({ id: 'c3', status: 'succeeded', truncated: true });
    } finally {
      await worker.close();
      await deliveries.close();
      await hook.close();
    }
  });
});
