import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startScriptedModelServer, type ScriptedModelServer } from '@toolplane/agent/testing';
import { ADD_TOOL, ROOT, api, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';
import { pollUntil, waitReady } from '../support/poll.js';

const ADMIN_KEY = 'console-admin-key-0123456789';
const SHOTS = join(ROOT, 'test', 'console', 'screenshots');

/**
 * The console in a real headless Chromium against real planner and worker processes: sign-in with a
 * tenant key (the key leaves the address and the page), tenant walls, a failed call retried from its
 * page, an approval from the inbox, a run's steps appearing live. Each page is saved as a screenshot.
 */
describe('the web console', () => {
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  let llm: ScriptedModelServer;
  let downstream: Server;
  let browser: Browser;
  let acme: BrowserContext;
  let page: Page;
  let acmeKey: string;
  let globexKey: string;
  let flakyHits = 0;
  let releaseHold: () => void = () => {};
  const held = new Promise<void>((resolve) => (releaseHold = resolve));
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  const as = (key: string) => ({ authorization: `Bearer ${key}` });
  const admin = as(ADMIN_KEY);

  /** A key's secret part: base64url, so it may hold `_` itself (splitting on `_` would cut it short). */
  const secretOf = (key: string) => /^tp_[0-9a-z]{16}_(.+)$/.exec(key)![1]!;
  /** The address bar and the whole page never hold the key, nor its secret part. */
  const expectNoKey = async (key: string) => {
    const secret = secretOf(key);
    expect(page.url()).not.toContain(secret);
    const html = await page.content();
    expect(html).not.toContain(secret);
    expect(await page.evaluate(() => document.cookie)).not.toContain('toolplane_console');
  };
  const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    downstream = createServer((req, res) => {
      if (req.url === '/flaky') {
        flakyHits++;
        res.writeHead(flakyHits === 1 ? 500 : 200, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ hit: flakyHits }));
      }
      // Answers when the test says so: a run stays mid-way until then.
      void held.then(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"released":true}');
      });
    });
    await new Promise<void>((resolve) => downstream.listen(0, '127.0.0.1', resolve));
    const port = (downstream.address() as AddressInfo).port;
    llm = await startScriptedModelServer();
    [planner, worker] = await Promise.all([
      startPlanner({ ...env, TOOLPLANE_ADMIN_KEY: ADMIN_KEY, OPENAI_BASE_URL: llm.baseUrl, TOOLPLANE_MODEL: 'console-live', CONSOLE_TRACE_URL: 'http://traces.example/trace/{traceId}' }),
      startWorker(env),
    ]);
    await Promise.all([waitReady(planner.url), waitReady(worker.url)]);
    const key = async (tenant: string) => {
      const res = await api(planner.url, 'POST', '/v1/admin/keys', { name: tenant, tenant, scopes: ['tools:read', 'tools:write', 'calls:read', 'calls:write', 'calls:approve', 'runs:read', 'runs:write'] }, admin);
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return res.body.key as string;
    };
    [acmeKey, globexKey] = await Promise.all([key('acme'), key('globex')]);
    const fetchTool = (path: string) => ({
      ...ADD_TOOL,
      description: `Fetches ${path} from the test downstream`,
      parameters: { type: 'object', properties: {} },
      code: `export default async function (args, ctx) { const r = await ctx.fetch('http://127.0.0.1:${port}${path}'); if (!r.ok) throw new Error('downstream answered ' + r.status); return await r.json() }`,
      egress: [`127.0.0.1:${port}`],
      retries: { attempts: 1, backoffMs: 10 },
    });
    const puts = [
      api(planner.url, 'PUT', '/v1/tools/acme-add', ADD_TOOL, as(acmeKey)),
      api(planner.url, 'PUT', '/v1/tools/acme-flaky', fetchTool('/flaky'), as(acmeKey)),
      api(planner.url, 'PUT', '/v1/tools/acme-hold', fetchTool('/hold'), as(acmeKey)),
      api(planner.url, 'PUT', '/v1/tools/acme-gated', { ...ADD_TOOL, requiresApproval: true }, as(acmeKey)),
      api(planner.url, 'PUT', '/v1/tools/globex-ledger', ADD_TOOL, as(globexKey)),
    ];
    for (const res of await Promise.all(puts)) expect(res.status, JSON.stringify(res.body)).toBe(201);
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    acme = await browser.newContext({ viewport: { width: 1366, height: 800 } });
    page = await acme.newPage();
  });
  afterAll(async () => {
    releaseHold();
    await browser?.close();
    await Promise.all([planner?.kill(), worker?.kill()]);
    await llm?.close();
    await new Promise((resolve) => downstream?.close(resolve));
  });

  test('?key= once signs in with an HttpOnly SameSite=Strict cookie and drops the key; forged, cross-origin and revoked sign-ins fail', async () => {
    const res = await fetch(`${planner.url}/console/calls?key=${acmeKey}&status=failed`, { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/console/calls?status=failed');
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^toolplane_console=[0-9a-z]{16}\.\d+\.[\w-]+;/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Path=\/console/);
    expect(cookie).not.toContain(secretOf(acmeKey));
    const session = { cookie: cookie.split(';')[0]! };
    const me = await api(planner.url, 'GET', '/console/api/v1/console/session', undefined, session);
    expect(me.body).toMatchObject({ tenant: 'acme', admin: false, traceUrl: 'http://traces.example/trace/{traceId}' });
    // The cookie opens the console's API only, never /v1 itself.
    expect((await api(planner.url, 'GET', '/v1/tools', undefined, session)).status).toBe(401);
    const [id, expires, mac] = session.cookie.split('=')[1]!.split('.');
    const forged = await api(planner.url, 'GET', '/console/api/v1/console/session', undefined, { cookie: `toolplane_console=${id}.${Number(expires) + 1000}.${mac}` });
    expect([forged.status, forged.body.error.code]).toEqual([401, 'UNAUTHORIZED']);
    const asAdmin = await api(planner.url, 'GET', '/console/api/v1/console/session', undefined, { cookie: `toolplane_console=admin.${expires}.${mac}` });
    expect(asAdmin.status).toBe(401);
    const wrong = await fetch(`${planner.url}/console?key=tp_0000000000000000_nope`, { redirect: 'manual' });
    expect([wrong.status, wrong.headers.get('location'), wrong.headers.get('set-cookie')]).toEqual([303, '/console?signin=failed', null]);
    const crossSite = await fetch(`${planner.url}/console?key=${acmeKey}`, { redirect: 'manual', headers: { 'sec-fetch-site': 'cross-site' } });
    expect(crossSite.status).toBe(403);
    const crossPost = await api(planner.url, 'POST', '/console/api/session', { key: acmeKey }, { origin: 'http://evil.example' });
    expect([crossPost.status, crossPost.body.error.code]).toEqual([403, 'FORBIDDEN']);
    // A revoked key's sessions end with it.
    const temp = await api(planner.url, 'POST', '/v1/admin/keys', { name: 'temp', tenant: 'acme', scopes: ['tools:read'] }, admin);
    const tempCookie = (await fetch(`${planner.url}/console?key=${temp.body.key}`, { redirect: 'manual' })).headers.get('set-cookie')!.split(';')[0]!;
    expect((await api(planner.url, 'GET', '/console/api/v1/console/tools', undefined, { cookie: tempCookie })).status).toBe(200);
    expect((await api(planner.url, 'DELETE', `/v1/admin/keys/${temp.body.id}`, undefined, admin)).status).toBe(204);
    expect((await api(planner.url, 'GET', '/console/api/v1/console/tools', undefined, { cookie: tempCookie })).status).toBe(401);
    // Scopes hold through the console as through /v1: this key may only read tools.
  });

  test('a tenant key signs in, sees only its tools with live stats, and the key is nowhere in the address bar or page', async () => {
    await page.goto(`${planner.url}/console?key=${acmeKey}`);
    expect(new URL(page.url()).pathname).toBe('/console');
    expect(new URL(page.url()).search).toBe('');
    await page.locator('tr[data-tool="acme-add"]').waitFor();
    const tools = await page.locator('tr[data-tool]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-tool')));
    expect(tools).toEqual(['acme-add', 'acme-flaky', 'acme-gated', 'acme-hold']);
    await expect(page.getByText('globex-ledger').count()).resolves.toBe(0);
    await expect(page.locator('#who').textContent()).resolves.toContain('tenant acme');
    await expectNoKey(acmeKey);
    // The API behind it holds the same wall: another tenant's tool is not found.
    const other = await page.evaluate(async () => (await fetch('/console/api/v1/console/tools/globex-ledger')).status);
    expect(other).toBe(404);

    // Traffic shows up in the list: a call of acme-add, then the row's figures change on the next refresh.
    expect((await api(planner.url, 'POST', '/v1/calls', { tool: 'acme-add', arguments: { a: 1, b: 2 }, wait: true }, as(acmeKey))).body.status).toBe('succeeded');
    await page.locator('tr[data-tool="acme-add"] td.num').first().filter({ hasNotText: /^0$/ }).waitFor({ timeout: 10_000 });
    await shot('tools');

    // A second version, so the tool's page offers a rollback to the first.
    const v2 = await api(planner.url, 'PUT', '/v1/tools/acme-add', { ...ADD_TOOL, code: 'export default async function (args) { return args.a + args.b + 0 }' }, as(acmeKey));
    expect(v2.body.version).toBe(2);
    await page.getByRole('link', { name: 'acme-add' }).click();
    await page.getByRole('heading', { name: /acme-add/ }).waitFor();
    await page.getByText('Arguments schema').waitFor();
    await page.locator('tr[data-call]').first().waitFor();
    await shot('tool');
    await page.getByRole('button', { name: 'Roll back to v1' }).click();
    await page.getByText('Rolled back: v3 now runs the code of v1.').waitFor();
    const current = await api(planner.url, 'GET', '/v1/tools/acme-add', undefined, as(acmeKey));
    expect([current.body.version, current.body.code]).toEqual([3, ADD_TOOL.code]);
    await expectNoKey(acmeKey);
  });

  test('a failed call is opened from the explorer, retried, and attempt 2 succeeds', async () => {
    const failed = await api(planner.url, 'POST', '/v1/calls', { tool: 'acme-flaky', arguments: {}, wait: true }, as(acmeKey));
    expect([failed.body.status, failed.body.error?.code]).toEqual(['failed', 'TOOL_ERROR']);
    await page.keyboard.press('c');
    await page.getByRole('heading', { name: 'Calls' }).waitFor();
    await page.locator('#f-status').selectOption('failed');
    await page.locator('#f-tool').fill('acme-flaky');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/status=failed/);
    const row = page.locator(`tr[data-call="${failed.body.id}"]`);
    await row.waitFor();
    await shot('calls');
    await row.getByRole('link').click();
    await page.getByText('downstream answered 500').first().waitFor();
    await page.getByRole('button', { name: 'Retry call' }).click();
    const second = page.locator('tr[data-attempt="2"]');
    await second.getByText('succeeded').waitFor({ timeout: 20_000 });
    await expect(page.locator('tr[data-attempt="1"]').getByText('failed').count()).resolves.toBe(1);
    // Both attempts with their times: the first one's kept across the retry.
    for (const n of [1, 2]) await expect(page.locator(`tr[data-attempt="${n}"] td`).nth(2).textContent()).resolves.not.toBe('—');
    await page.getByText('"hit": 2').waitFor();
    await shot('call');
    expect((await api(planner.url, 'GET', `/v1/calls/${failed.body.id}`, undefined, as(acmeKey))).body.status).toBe('succeeded');
    await expectNoKey(acmeKey);
  });

  test('a call is approved from the inbox, bound to the hash of its arguments, and then runs', async () => {
    const globexView = await api(planner.url, 'GET', '/v1/console/approvals', undefined, as(globexKey));
    const older = (await api(planner.url, 'POST', '/v1/calls', { tool: 'acme-gated', arguments: { a: 1, b: 1 } }, as(acmeKey))).body.id as string;
    const newer = (await api(planner.url, 'POST', '/v1/calls', { tool: 'acme-gated', arguments: { a: 40, b: 2 } }, as(acmeKey))).body.id as string;
    const record = (await api(planner.url, 'GET', `/v1/calls/${newer}`, undefined, as(acmeKey))).body;
    expect(record.status).toBe('awaiting_approval');
    await page.keyboard.press('a');
    await page.getByRole('heading', { name: 'Approvals' }).waitFor();
    const row = page.locator(`tr[data-call="${newer}"]`);
    await row.waitFor();
    // Newest first, and the hash shown is the one the approval binds to.
    const order = await page.locator('tr[data-call]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-call')));
    expect(order.indexOf(newer)).toBeLessThan(order.indexOf(older));
    expect(order.indexOf(newer)).toBeGreaterThanOrEqual(0);
    await expect(row.locator('[data-args-hash]').textContent()).resolves.toBe(record.argsHash);
    await shot('approvals');
    await row.getByRole('button', { name: 'Approve' }).click();
    await page.getByText(`Approved call ${newer}`).waitFor();
    await row.waitFor({ state: 'detached' });
    const done = await pollUntil(async () => (await api(planner.url, 'GET', `/v1/calls/${newer}`, undefined, as(acmeKey))).body, (c) => c.status === 'succeeded');
    expect(done.result).toBe(42);
    // Another tenant's inbox never held these.
    expect(globexView.body.approvals).toEqual([]);
    expect((await api(planner.url, 'GET', '/v1/console/approvals', undefined, as(globexKey))).body.approvals).toEqual([]);
  });

  test("a run's steps appear live on its page while it runs, with tokens against the budget", async () => {
    llm.script('console-live', [
      { content: 'First the sum.', toolCalls: [{ id: 'c1', name: 'acme-add', arguments: { a: 2, b: 3 } }] },
      { content: 'Now the slow lookup.', toolCalls: [{ id: 'c2', name: 'acme-hold', arguments: {} }] },
      { content: 'The sum is 5 and the lookup was released.' },
    ]);
    const run = await api(planner.url, 'POST', '/v1/runs', { input: 'Add 2 and 3, then look it up', model: 'console-live', tools: ['acme-add', 'acme-hold'], budget: { maxTokens: 50_000 } }, as(acmeKey));
    expect(run.status, JSON.stringify(run.body)).toBe(201);
    await page.keyboard.press('r');
    await page.getByRole('heading', { name: 'Runs' }).waitFor();
    await page.getByRole('link', { name: run.body.id }).waitFor();
    await shot('runs');
    await page.getByRole('link', { name: run.body.id }).click();
    await page.locator('li[data-step="0"]').getByText('First the sum.').waitFor({ timeout: 20_000 });
    // Mark this document: if the next steps arrive without a reload, the mark is still there.
    await page.evaluate(() => ((window as unknown as { mark: number }).mark = 1));
    // The run waits on the held tool call: its last step and answer do not exist yet.
    await expect(page.getByText('The sum is 5').count()).resolves.toBe(0);
    releaseHold();
    await page.getByText('Final answer: The sum is 5 and the lookup was released.').first().waitFor({ timeout: 20_000 });
    await page.locator('li[data-step="1"]').getByText('"released": true').waitFor();
    expect(await page.evaluate(() => (window as unknown as { mark?: number }).mark)).toBe(1);
    await page.locator('meter[aria-label="tokens"]').waitFor();
    await page.getByText('succeeded').first().waitFor();
    await shot('run');
    await expectNoKey(acmeKey);
  });

  test('the admin key signs in through the form (never in the address) and sees every tenant', async () => {
    const context = await browser.newContext({ viewport: { width: 1366, height: 800 } });
    const adminPage = await context.newPage();
    await adminPage.goto(`${planner.url}/console`);
    await adminPage.getByLabel('API key').fill(ADMIN_KEY);
    await adminPage.screenshot({ path: join(SHOTS, 'signin.png') });
    await adminPage.getByRole('button', { name: 'Sign in' }).click();
    await adminPage.locator('tr[data-tool="globex-ledger"]').waitFor();
    await adminPage.locator('tr[data-tool="acme-add"]').waitFor();
    expect(await adminPage.content()).not.toContain(ADMIN_KEY);
    expect(adminPage.url()).toBe(`${planner.url}/console`);
    await context.close();
  });
});
