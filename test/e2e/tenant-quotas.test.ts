import { afterAll, afterEach, beforeAll, describe, expect, inject, test } from 'vitest';
import { api, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';

const ADMIN_KEY = 'admin-key-for-quota-tests-0123';
const SCOPES = ['tools:read', 'tools:write', 'calls:read', 'calls:write'];
const BLOB = {
  description: 'returns n bytes',
  parameters: { type: 'object', properties: { n: { type: 'number' } }, required: ['n'] },
  code: 'export default (args) => "x".repeat(args.n)',
  retries: { attempts: 3, backoffMs: 10 },
};
const ECHO = { description: 'echoes', parameters: { type: 'object' }, code: 'export default (args) => args' };

/**
 * Tenant ceilings with the real planner and worker: a tenant that fills its stored-result quota or
 * its calls in flight is refused with QUOTA_EXCEEDED, and another tenant's calls go on meanwhile.
 */
describe('per-tenant ceilings', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  const keys: Record<string, string> = {};
  const as = (who: string) => ({ authorization: `Bearer ${who === 'admin' ? ADMIN_KEY : keys[who]}` });
  const call = (who: string, method: string, path: string, body?: unknown) => api(planner.url, method, path, body, as(who));

  beforeAll(async () => {
    [planner, worker] = await Promise.all([
      startPlanner({ ...env, TOOLPLANE_ADMIN_KEY: ADMIN_KEY, API_RATE_LIMIT_PER_S: '0', TENANT_MAX_CALLS_IN_FLIGHT: '3' }),
      // 20 kB of stored results per tenant: three 6 kB results fit, a fourth does not.
      startWorker({ ...env, TENANT_MAX_RESULT_BYTES: '20000' }),
    ]);
    for (const who of ['hoarder', 'flood', 'bystander']) {
      const created = await call('admin', 'POST', '/v1/admin/keys', { name: who, tenant: who, scopes: SCOPES });
      expect(created.status).toBe(201);
      keys[who] = created.body.key;
    }
    expect((await call('hoarder', 'PUT', '/v1/tools/blob', BLOB)).status).toBe(201);
    expect((await call('flood', 'PUT', '/v1/tools/flood-echo', ECHO)).status).toBe(201);
    expect((await call('bystander', 'PUT', '/v1/tools/echo', ECHO)).status).toBe(201);
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.log(`planner:\n${planner.output()}\nworker:\n${worker.output()}`);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), worker?.kill()]);
  });

  test('a tenant that fills its stored-result quota gets QUOTA_EXCEEDED; another tenant stores results as before', async () => {
    // Each finished call leaves its tenant's calls in flight (cap 3), so these run one after another.
    for (let i = 0; i < 3; i++) {
      const ok = await call('hoarder', 'POST', '/v1/calls', { tool: 'blob', arguments: { n: 6_000 }, wait: 20_000 });
      expect(ok.body).toMatchObject({ status: 'succeeded' });
      expect(ok.body.result).toHaveLength(6_000);
    }
    const over = await call('hoarder', 'POST', '/v1/calls', { tool: 'blob', arguments: { n: 6_000 }, wait: 20_000 });
    // Failed at once, not retried: another attempt would not make room.
    expect(over.body).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'QUOTA_EXCEEDED' } });
    expect(over.body.error.message).toMatch(/not kept/);
    expect(over.body.result).toBeUndefined();

    // Until its oldest result expires, the tenant's new calls are refused before they run.
    const refused = await call('hoarder', 'POST', '/v1/calls', { tool: 'blob', arguments: { n: 10 } });
    expect([refused.status, refused.body.error.code, refused.body.error.details?.quota]).toEqual([429, 'QUOTA_EXCEEDED', 'result_bytes']);
    expect(refused.body.error.details.retryAfterMs).toBeGreaterThan(0);

    // The other tenant is not touched by any of it.
    for (let i = 0; i < 3; i++) {
      const theirs = await call('bystander', 'POST', '/v1/calls', { tool: 'echo', arguments: { i, pad: 'y'.repeat(6_000) }, wait: 20_000 });
      expect(theirs.body).toMatchObject({ status: 'succeeded', result: { i } });
    }
  });

  test('a tenant past its calls in flight gets 429 QUOTA_EXCEEDED; another tenant is accepted; a cancelled call frees its slot', async () => {
    const held: string[] = [];
    for (let i = 0; i < 3; i++) {
      const accepted = await call('flood', 'POST', '/v1/calls', { tool: 'flood-echo', arguments: { i }, delayMs: 600_000 });
      expect(accepted.status).toBe(202);
      held.push(accepted.body.id);
    }
    const refused = await call('flood', 'POST', '/v1/calls', { tool: 'flood-echo', arguments: { i: 3 } });
    expect([refused.status, refused.body.error.code]).toEqual([429, 'QUOTA_EXCEEDED']);
    expect(refused.body.error.details).toMatchObject({ quota: 'calls_in_flight', limit: 3, inFlight: 3 });
    const keyed = await call('flood', 'POST', '/v1/calls', { tool: 'flood-echo', arguments: {}, idempotencyKey: 'k' });
    expect([keyed.status, keyed.body.error.code]).toEqual([429, 'QUOTA_EXCEEDED']);
    // MCP submissions pass the same ceiling: a tool error the model can read.
    const viaMcp = await api(
      planner.url,
      'POST',
      '/mcp',
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'flood-echo', arguments: {} } },
      { ...as('flood'), accept: 'application/json, text/event-stream' },
    );
    expect(viaMcp.body.result).toMatchObject({ isError: true, structuredContent: { error: { code: 'QUOTA_EXCEEDED' } } });

    const other = await call('bystander', 'POST', '/v1/calls', { tool: 'echo', arguments: { fine: true }, wait: 20_000 });
    expect(other.body).toMatchObject({ status: 'succeeded', result: { fine: true } });

    expect((await call('flood', 'POST', `/v1/calls/${held[0]}/cancel`)).body.status).toBe('cancelled');
    const again = await call('flood', 'POST', '/v1/calls', { tool: 'flood-echo', arguments: { i: 4 }, idempotencyKey: 'k' });
    expect(again.status).toBe(202);
    const repeat = await call('flood', 'POST', '/v1/calls', { tool: 'flood-echo', arguments: { i: 4 }, idempotencyKey: 'k' });
    expect([repeat.status, repeat.body.id]).toEqual([202, again.body.id]);
    for (const id of [...held.slice(1), again.body.id]) await call('flood', 'POST', `/v1/calls/${id}/cancel`);
  });
});
