import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { startScriptedModelServer, type ScriptedModelServer } from '@toolplane/agent/testing';
import { ADD_TOOL, ROOT, api, eventually, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';

type Verify = (secret: string, headers: IncomingHttpHeaders, body: string) => boolean;

/**
 * The verification snippet of the README, exactly as written there (the code block after the
 * `webhook-verify` marker), loaded as a module: the test proves the documented code works.
 */
async function readmeVerifier(): Promise<Verify> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const m = /<!-- webhook-verify[^>]*-->\n```js\n([\s\S]*?)```/.exec(readme);
  if (!m) throw new Error('the README has no webhook-verify snippet');
  const file = join(mkdtempSync(join(tmpdir(), 'webhook-verify-')), 'verify.mjs');
  writeFileSync(file, m[1]!);
  return ((await import(pathToFileURL(file).href)) as { verifyWebhook: Verify }).verifyWebhook;
}

type Received = { headers: IncomingHttpHeaders; body: string; at: number };

/** A webhook receiver on 127.0.0.1 answering the statuses given in order (the last one from then on). */
async function startReceiver(statuses: number[]) {
  const got: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString(), at: Date.now() });
      res.statusCode = statuses[Math.min(got.length - 1, statuses.length - 1)]!;
      res.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/toolplane`,
    got,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('completion webhooks, with the receiver on a private address the operator opened', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix(), WEBHOOK_BACKOFF_MS: '200', WEBHOOK_MAX_ATTEMPTS: '4' };
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  let llm: ScriptedModelServer;
  let verify: Verify;

  beforeAll(async () => {
    llm = await startScriptedModelServer();
    verify = await readmeVerifier();
    [planner, worker] = await Promise.all([
      startPlanner({ ...env, OPENAI_BASE_URL: llm.baseUrl, TOOLPLANE_MODEL: 'webhook-model' }),
      // The receiver listens on 127.0.0.1: opened for this worker, as an operator would.
      startWorker({ ...env, TOOLPLANE_ALLOW_PRIVATE_NETWORKS: '127.0.0.1' }),
    ]);
    expect((await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL)).status).toBe(201);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), worker?.kill()]);
    await llm?.close();
  });

  test('a signed POST of the final record arrives within 1 s of the finish; a 500 is retried and every attempt shows on the call', async () => {
    const receiver = await startReceiver([500, 204]);
    try {
      const secret = (await api(planner.url, 'GET', '/v1/webhooks/secret')).body.secret as string;
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
      expect((await api(planner.url, 'GET', '/v1/webhooks/secret')).body.secret).toBe(secret);

      const call = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 2, b: 3 }, callbackUrl: receiver.url, wait: true });
      const finishedAt = Date.now();
      expect(call.body).toMatchObject({ status: 'succeeded', result: 5, callbackUrl: receiver.url });
      await eventually(async () => receiver.got[0], 5_000, 10);
      const first = receiver.got[0]!;
      expect(first.at - finishedAt).toBeLessThan(1_000);
      expect(verify(secret, first.headers, first.body)).toBe(true);
      expect(verify(secret, first.headers, first.body.replace('5', '6'))).toBe(false);
      const payload = JSON.parse(first.body);
      expect(payload).toMatchObject({ type: 'call.finished', data: { id: call.body.id, status: 'succeeded', result: 5 } });

      // The first answer was 500: the same delivery comes again, same webhook-id, signed afresh.
      await eventually(async () => receiver.got[1], 5_000, 20);
      const second = receiver.got[1]!;
      expect(second.headers['webhook-id']).toBe(first.headers['webhook-id']);
      expect(second.body).toBe(first.body);
      expect(verify(secret, second.headers, second.body)).toBe(true);
      expect(second.at - first.at).toBeGreaterThanOrEqual(150);

      const record = await eventually(async () => {
        const r = (await api(planner.url, 'GET', `/v1/calls/${call.body.id}`)).body;
        return r.webhook?.state === 'delivered' ? r : undefined;
      }, 5_000, 50);
      expect(record.webhook.attempts.map((a: { status: number }) => a.status)).toEqual([500, 204]);
      expect(record.webhook.attempts[0].error).toBe('receiver answered 500');
      expect(receiver.got).toHaveLength(2);
    } finally {
      await receiver.close();
    }
  });

  test('after a rotation deliveries carry both signatures until the grace period ends; another tenant cannot verify', async () => {
    const receiver = await startReceiver([200]);
    try {
      const old = (await api(planner.url, 'GET', '/v1/webhooks/secret')).body.secret as string;
      const rotated = await api(planner.url, 'POST', '/v1/webhooks/secret/rotate', {});
      expect(rotated.status).toBe(200);
      const fresh = rotated.body.secret as string;
      expect(fresh).not.toBe(old);
      expect(Date.parse(rotated.body.previousValidUntil)).toBeGreaterThan(Date.now());
      expect((await api(planner.url, 'GET', '/v1/webhooks/secret')).body.secret).toBe(fresh);

      await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 1, b: 1 }, callbackUrl: receiver.url, wait: true });
      const got = await eventually(async () => receiver.got[0], 5_000, 10);
      expect(String(got.headers['webhook-signature']).split(' ')).toHaveLength(2);
      expect(verify(fresh, got.headers, got.body)).toBe(true);
      expect(verify(old, got.headers, got.body)).toBe(true);
      expect(verify('whsec_' + Buffer.alloc(32, 7).toString('base64'), got.headers, got.body)).toBe(false);
    } finally {
      await receiver.close();
    }
  });

  test('a run with a callbackUrl delivers its final record as run.finished', async () => {
    const receiver = await startReceiver([200]);
    try {
      llm.script('webhook-model', [{ content: 'all done' }]);
      const run = await api(planner.url, 'POST', '/v1/runs', { input: 'say done', callbackUrl: receiver.url });
      expect(run.status, JSON.stringify(run.body)).toBe(201);
      const got = await eventually(async () => receiver.got[0], 10_000, 20);
      const secret = (await api(planner.url, 'GET', '/v1/webhooks/secret')).body.secret as string;
      expect(verify(secret, got.headers, got.body)).toBe(true);
      expect(JSON.parse(got.body)).toMatchObject({ type: 'run.finished', data: { id: run.body.id, status: 'succeeded', finalAnswer: 'all done' } });
      const view = await eventually(async () => {
        const r = (await api(planner.url, 'GET', `/v1/runs/${run.body.id}`)).body;
        return r.webhook?.state === 'delivered' ? r : undefined;
      }, 5_000, 50);
      expect(view.callbackUrl).toBe(receiver.url);
    } finally {
      await receiver.close();
    }
  });

  test('a callbackUrl that is not an absolute http(s) URL is refused when the call is made', async () => {
    for (const callbackUrl of ['file:///etc/passwd', 'not a url', 'ftp://example.com/x']) {
      const r = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 1, b: 1 }, callbackUrl });
      expect(r.status, callbackUrl).toBe(400);
      expect(r.body.error.code).toBe('INVALID_REQUEST');
    }
  });
});

describe('completion webhooks to a private address the operator did not open', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  let planner: ServiceProcess;
  let worker: ServiceProcess;

  beforeAll(async () => {
    [planner, worker] = await Promise.all([startPlanner(env), startWorker({ ...env, TOOLPLANE_ALLOW_PRIVATE_NETWORKS: '' })]);
    expect((await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL)).status).toBe(201);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), worker?.kill()]);
  });

  test('the delivery is refused by the egress rules, never sent, and not retried', async () => {
    const receiver = await startReceiver([200]);
    try {
      const call = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 2, b: 2 }, callbackUrl: receiver.url, wait: true });
      expect(call.body.status).toBe('succeeded');
      const record = await eventually(async () => {
        const r = (await api(planner.url, 'GET', `/v1/calls/${call.body.id}`)).body;
        return r.webhook?.state === 'failed' ? r : undefined;
      }, 5_000, 50);
      expect(record.webhook.attempts).toHaveLength(1);
      expect(record.webhook.attempts[0].error).toMatch(/^refused by the egress rules: 127\.0\.0\.1 is a private or loopback address/);
      await new Promise((r) => setTimeout(r, 500));
      expect(receiver.got).toHaveLength(0);
    } finally {
      await receiver.close();
    }
  });
});
