import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { ADD_TOOL, api, startPlanner, uniquePrefix, type ServiceProcess } from '../support/services.js';

const ADMIN_KEY = 'test-admin-key-0123456789';

describe('/admin/queues behind the admin key', () => {
  let planner: ServiceProcess;
  let closed: ServiceProcess;
  let browser: Browser | undefined;
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };

  beforeAll(async () => {
    [planner, closed] = await Promise.all([
      startPlanner({ ...env, TOOLPLANE_ADMIN_KEY: ADMIN_KEY }),
      startPlanner({ ...env, TOOLPLANE_PREFIX: uniquePrefix() }),
    ]);
    for (const tool of ['add', 'weather-lookup']) {
      // With an admin key set, the API wants a key too: the admin key acts as an admin API key.
      const put = await api(planner.url, 'PUT', `/v1/tools/${tool}`, ADD_TOOL, { authorization: `Bearer ${ADMIN_KEY}` });
      expect(put.status).toBe(201);
    }
  });
  afterAll(async () => {
    await browser?.close();
    await Promise.all([planner?.kill(), closed?.kill()]);
  });

  test('without TOOLPLANE_ADMIN_KEY the dashboard is closed to everyone', async () => {
    for (const headers of [{}, { authorization: `Bearer ${ADMIN_KEY}` }] as Array<Record<string, string>>) {
      const res = await api(closed.url, 'GET', '/admin/queues', undefined, headers);
      expect([res.status, res.body.error.code]).toEqual([403, 'FORBIDDEN']);
    }
    expect((await api(closed.url, 'GET', `/admin/queues?key=${ADMIN_KEY}`)).status).toBe(403);
  });

  test('a missing or wrong key gets 401 UNAUTHORIZED; the right bearer key gets the board', async () => {
    const none = await api(planner.url, 'GET', '/admin/queues/api/queues');
    expect([none.status, none.body.error.code]).toEqual([401, 'UNAUTHORIZED']);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await api(planner.url, 'GET', '/admin/queues/api/queues', undefined, { authorization: 'Bearer nope' });
    expect(wrong.status).toBe(401);
    expect((await api(planner.url, 'GET', '/admin/queues?key=nope')).status).toBe(401);
    const forged = await api(planner.url, 'GET', '/admin/queues', undefined, { cookie: `toolplane_admin=${Date.now() + 60_000}.AAAA` });
    expect(forged.status).toBe(401);
    const ok = await api(planner.url, 'GET', '/admin/queues/api/queues', undefined, { authorization: `Bearer ${ADMIN_KEY}` });
    expect(ok.status).toBe(200);
    expect(ok.body.queues.map((q: { displayName: string }) => q.displayName).sort()).toEqual(['add', 'weather-lookup']);
  });

  test('?key= once sets an HttpOnly SameSite=Strict cookie and redirects to the page without the key', async () => {
    const res = await fetch(`${planner.url}/admin/queues?key=${ADMIN_KEY}`, { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/admin/queues');
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^toolplane_admin=\d+\.[\w-]+;/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Path=\/admin\/queues/);
    expect(cookie).not.toContain(ADMIN_KEY);
    const page = await fetch(`${planner.url}/admin/queues`, { headers: { cookie: cookie.split(';')[0]! } });
    expect(page.status).toBe(200);
  });

  test("headless Chromium logs in with ?key= and sees every tool's queue, new tools included", async () => {
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    const page = await browser.newPage();
    await page.goto(`${planner.url}/admin/queues?key=${ADMIN_KEY}`);
    expect(new URL(page.url()).search).toBe('');
    // The board lists queues by their BullMQ name, `{tool}` (the braces are the Redis Cluster hash tag).
    await page.getByText(/^\{?weather-lookup\}?$/).first().waitFor({ timeout: 15_000 });
    await page.getByText(/^\{?add\}?$/).first().waitFor({ timeout: 15_000 });
    expect((await api(planner.url, 'PUT', '/v1/tools/late-tool', ADD_TOOL, { authorization: `Bearer ${ADMIN_KEY}` })).status).toBe(201);
    await page.reload();
    await page.getByText(/^\{?late-tool\}?$/).first().waitFor({ timeout: 15_000 });
  });
});
