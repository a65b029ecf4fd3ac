import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventEmitter } from 'node:events';
import express, { Router, type Express } from 'express';
import { RequestErrorCode, silentLogger } from '@toolplane/core';
import { createHttpMetrics, createRegistry } from '@toolplane/metrics';
import { RunEventFeed, RunStore, createAgentKeys } from '@toolplane/agent';
import {
  ApiKeyStore,
  CallGate,
  CallWaiter,
  SecretStore,
  ToolRegistry,
  UpstreamStore,
  closeRedis,
  createCalls,
  createKeys,
  createRedisConnection,
  waitForRedis,
  type RedisConnection,
} from '@toolplane/queue';
import { API_ROUTES } from './api-routes.js';
import { openApiPath } from './api-spec.js';
import { createPlannerApp, type PlannerDeps, type PlannerEvents } from './app.js';
import { ArgumentValidator } from './validation.js';
import { freshPrefix } from '../../../test/support/redis.js';

/**
 * Mounts that serve a user interface, not the API: the document leaves them out on purpose.
 * Bull Board is an operator's page; the console is a browser app over the same API.
 */
const NOT_API = [/^\/admin\/queues(\/|$)/, /^\/console(\/|$)/];

type Layer = { route?: { path: string | string[]; methods: Record<string, boolean> }; handle?: { stack?: Layer[] }; rawPath?: unknown };

/** Every `METHOD path` the express app routes, read from its router stacks (express 5 / router 2). */
function routesOf(app: Express): string[] {
  const out: string[] = [];
  const walk = (stack: Layer[], prefix: string) => {
    for (const layer of stack) {
      if (layer.route) {
        for (const path of [layer.route.path].flat()) {
          for (const method of Object.keys(layer.route.methods)) out.push(`${method === '_all' ? 'all' : method} ${prefix}${path}`);
        }
      } else if (layer.handle?.stack) {
        const mount = typeof layer.rawPath === 'string' && layer.rawPath !== '/' ? layer.rawPath : '';
        walk(layer.handle.stack, prefix + mount);
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack, '');
  return [...new Set(out)];
}

describe('the OpenAPI document', () => {
  const prefix = freshPrefix('oa');
  const closing = new AbortController();
  let redis: RedisConnection;
  let subscriber: RedisConnection;
  let app: Express;
  let server: Server;
  let base: string;
  let doc: any;

  beforeAll(async () => {
    redis = createRedisConnection(inject('redisUrl'), 'client');
    subscriber = createRedisConnection(inject('redisUrl'), 'subscriber');
    await Promise.all([waitForRedis(redis), waitForRedis(subscriber)]);
    const keys = createKeys(prefix);
    const agentKeys = createAgentKeys(prefix);
    const runStore = new RunStore(redis, agentKeys, 60_000);
    const promRegistry = createRegistry();
    const deps = {
      redis,
      registry: new ToolRegistry(redis, keys),
      secrets: new SecretStore(redis, keys),
      calls: createCalls(redis, keys),
      gate: new CallGate(redis, keys),
      waiter: new CallWaiter(subscriber, keys),
      validator: new ArgumentValidator(),
      codeChecker: { check: () => Promise.resolve({ ok: true }) },
      promRegistry,
      httpMetrics: createHttpMetrics(promRegistry),
      logger: silentLogger(),
      maxBodyBytes: 1024 * 1024,
      adminKey: 'admin-key-for-openapi-tests-0123',
      apiKeys: new ApiKeyStore(redis, keys),
      keys,
      apiRateLimitPerS: 0,
      maxJsonDepth: 64,
      runs: { store: runStore, feed: new RunEventFeed(subscriber, agentKeys, runStore), manager: undefined, closing: closing.signal },
      upstreams: new UpstreamStore(redis, keys),
      events: new EventEmitter<PlannerEvents>(),
    } as unknown as PlannerDeps;
    app = createPlannerApp(deps);
    server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // Served without a key.
    const res = await fetch(`${base}/v1/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    doc = await res.json();
  });
  afterAll(async () => {
    closing.abort();
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    await Promise.all([redis, subscriber].map((c) => c && closeRedis(c)));
  });

  test('every route the app serves is in the document, and nothing else is', () => {
    const served = routesOf(app).filter((r) => !NOT_API.some((re) => re.test(r.split(' ')[1]!)));
    const documented = new Set(Object.entries(doc.paths as Record<string, object>).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`)));
    const missing = served.filter((r) => {
      const [method, path] = r.split(' ') as [string, string];
      const p = openApiPath(path);
      return method === 'all' ? ![...documented].some((d) => d.endsWith(` ${p}`)) : !documented.has(`${method} ${p}`);
    });
    expect(missing, 'routes without an entry in the API document (add one next to the route)').toEqual([]);
    const servedSet = new Set(served.map((r) => { const [m, p] = r.split(' ') as [string, string]; return `${m} ${openApiPath(p)}`; }));
    const stale = [...documented].filter((d) => !servedSet.has(d) && !servedSet.has(`all ${d.split(' ')[1]}`));
    expect(stale, 'documented routes the app does not serve').toEqual([]);
    expect(served.length).toBeGreaterThan(20);
  });

  test('the route walker sees routes of routers mounted under a path', () => {
    const probe = express();
    const router = Router();
    router.get('/not-documented/:id', (_req, res) => void res.end());
    probe.use('/v1', router);
    expect(routesOf(probe)).toContain('get /v1/not-documented/:id');
  });

  test('every operation has an id, a summary, an example and its error codes; every request code appears', () => {
    const seen = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(ops)) {
        const where = `${method} ${path}`;
        expect(op.operationId, where).toMatch(/^[a-z][A-Za-z0-9]+$/);
        expect(op.summary, where).toBeTruthy();
        // An example of the request, of a success answer, or (for a bodiless DELETE) of its path.
        const examples = [
          op.requestBody?.content?.['application/json']?.example,
          ...Object.entries(op.responses as Record<string, any>).filter(([s]) => s.startsWith('2')).flatMap(([, r]) => Object.values(r.content ?? {}).map((c: any) => c.example)),
          ...(op.parameters ?? []).map((p: any) => p.example),
        ];
        expect(examples.some((e) => e !== undefined), `${where} has an example`).toBe(true);
        // Probes and this document take no input and need no key: they have no client errors.
        if (op['x-toolplane-auth'] !== 'public') expect(Object.keys(op.responses).some((s) => s.startsWith('4')), `${where} has a 4xx`).toBe(true);
        for (const [status, r] of Object.entries(op.responses as Record<string, any>)) {
          const codes: string[] = r.content?.['application/json']?.schema?.properties?.error?.properties?.code?.enum ?? [];
          for (const c of codes) seen.add(c);
          if (Number(status) >= 400) expect(codes.length, `${where} ${status} lists its codes`).toBeGreaterThan(0);
        }
      }
    }
    expect([...RequestErrorCode.options].filter((c) => !seen.has(c))).toEqual([]);
    // The call body's new options are documented from the schema itself.
    const ref: string = doc.paths['/v1/calls'].post.requestBody.content['application/json'].schema.$ref;
    expect(ref).toBe('#/components/schemas/CallRequest');
    const callBody = doc.components.schemas.CallRequest;
    expect(callBody.properties.version).toMatchObject({ type: 'integer', minimum: 1 });
    expect(callBody.properties.callbackUrl).toMatchObject({ type: 'string', maxLength: 2048 });
    expect(doc.paths['/v1/calls'].post.responses['404'].content['application/json'].schema.properties.error.properties.code.enum).toEqual(['TOOL_NOT_FOUND']);
  });

  test('Redocly CLI lints the document clean', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'toolplane-openapi-'));
    try {
      await writeFile(join(dir, 'openapi.json'), JSON.stringify(doc));
      const result = await new Promise<{ code: number; out: string }>((resolve) => {
        execFile(
          join(import.meta.dirname, '..', 'node_modules', '.bin', 'redocly'),
          ['lint', '--format=stylish', '--max-problems=100', `--config=${join(import.meta.dirname, 'redocly.yaml')}`, 'openapi.json'],
          // No network: telemetry and update checks off.
          { cwd: dir, env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', CI: 'true' }, timeout: 60_000 },
          (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}\n${stderr}` }),
        );
      });
      expect(result.out).not.toMatch(/warning/i);
      expect(result.code, result.out).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the document lists the routes of API_ROUTES once each', () => {
    const keys = API_ROUTES.map((r) => `${r.method} ${r.path}`);
    expect(new Set(keys).size).toBe(keys.length);
  });
});
