import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { startScriptedModelServer, type ScriptedModelServer } from '@toolplane/agent/testing';
import { ADD_TOOL, api, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';

const STABLE_CODES = new Set([
  'INVALID_JSON', 'INVALID_REQUEST', 'PAYLOAD_TOO_LARGE', 'NOT_FOUND', 'TOOL_NOT_FOUND', 'INVALID_TOOL',
  'INVALID_ARGUMENTS', 'UNAUTHORIZED', 'FORBIDDEN', 'CONFLICT', 'RATE_LIMITED', 'UNAVAILABLE', 'UNSUPPORTED_MEDIA_TYPE',
]);

const hostileString = fc.oneof(
  fc.string(),
  fc.constantFrom('__proto__', 'constructor', '../../etc/passwd', '%00', '%ZZ', '{"a":', ']]]', '\u0000', 'x'.repeat(5000), '🙂', 'a/b/../../c'),
);

const jsonValue = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.constant({ __proto__: { polluted: true } }),
  fc.constant(JSON.parse('{"__proto__": {"admin": true}, "constructor": {"prototype": {"x": 1}}}')),
);

/** A request body: valid-looking shapes, wrong shapes, raw text that is not JSON. */
const body = fc.oneof(
  jsonValue.map((v) => JSON.stringify(v)),
  fc.record({ tool: fc.oneof(fc.constant('add'), hostileString), arguments: jsonValue, wait: fc.oneof(fc.boolean(), fc.integer(), fc.constant('yes')) }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
  fc.record({
    description: fc.oneof(fc.string(), fc.integer()),
    parameters: fc.oneof(jsonValue, fc.constant({ type: 'object', properties: { a: { type: 'wat' } } }), fc.constant({ $ref: '#/nope' })),
    code: fc.oneof(fc.string(), fc.constant('export default () => {'), fc.constant('import x from "fs"; export default x'), fc.constant('export default function(){ while(true){} }')),
    limits: jsonValue,
  }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 300 }),
  fc.constant('{"a":' + '['.repeat(5000)),
);

const path = fc.oneof(
  fc.constantFrom('/v1/tools', '/v1/tools/add', '/v1/calls', '/v1/calls/01m8h8bdenf6x3nad0cg33tk8p', '/v1/runs', '/v1/secrets', '/v1/admin/keys', '/metrics', '/readyz'),
  hostileString.map((s) => `/v1/tools/${encodeURIComponent(s)}`),
  hostileString.map((s) => `/v1/calls/${encodeURIComponent(s)}/cancel`),
  fc.tuple(fc.constantFrom('/v1/calls?', '/v1/tools?'), fc.dictionary(fc.constantFrom('tool', 'status', 'since', 'limit', 'cursor', 'format', 'x'), hostileString)).map(
    ([p, q]) => p + new URLSearchParams(q).toString(),
  ),
  hostileString.map((s) => `/${s}`),
);

const request = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH'),
  path,
  body,
  contentType: fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', ''),
});

describe('property-based fuzzing of the API', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  let llm: ScriptedModelServer;

  beforeAll(async () => {
    llm = await startScriptedModelServer();
    [planner, worker] = await Promise.all([startPlanner({ ...env, OPENAI_BASE_URL: llm.baseUrl }), startWorker(env)]);
    expect((await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL)).status).toBe(201);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), worker?.kill()]);
    await llm?.close();
  });

  test('2,000 malformed or hostile requests: no 5xx, no crash, every error has a stable code', async () => {
    const samples = fc.sample(request, { numRuns: 2_000, seed: 20261128 });
    const failures: string[] = [];
    for (let i = 0; i < samples.length; i += 20) {
      await Promise.all(
        samples.slice(i, i + 20).map(async (r) => {
          const withBody = r.method !== 'GET' && r.method !== 'DELETE';
          let res: Response;
          try {
            res = await fetch(planner.url + r.path, {
              method: r.method,
              headers: r.contentType ? { 'content-type': r.contentType } : {},
              ...(withBody ? { body: r.body } : {}),
            });
          } catch (err) {
            // fetch itself refuses some URLs before sending; that is not the server's doing.
            if (err instanceof TypeError && /URL|url/.test(String(err.message))) return;
            throw err;
          }
          const text = await res.text();
          if (res.status >= 500) failures.push(`${res.status} ${r.method} ${r.path}: ${text.slice(0, 200)}`);
          if (res.status >= 400) {
            let code: unknown;
            try {
              code = JSON.parse(text).error?.code;
            } catch {
              code = undefined;
            }
            if (!STABLE_CODES.has(String(code))) failures.push(`no stable code: ${res.status} ${r.method} ${r.path}: ${text.slice(0, 200)}`);
          }
        }),
      );
    }
    expect(failures).toEqual([]);
    expect(planner.proc.exitCode).toBeNull();
    expect((await api(planner.url, 'GET', '/readyz')).status).toBe(200);
    // The fuzzer may have deleted or replaced `add` with valid requests of its own.
    expect((await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL)).status).toBeLessThan(300);
    const ok = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 1, b: 2 }, wait: 10_000 });
    expect(ok.body).toMatchObject({ status: 'succeeded', result: 3 });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  }, 180_000);
});
