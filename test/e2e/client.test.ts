import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import openapiTS, { astToString } from 'openapi-typescript';
import ts from 'typescript';
import { startScriptedModelServer, type ScriptedModelServer } from '@toolplane/agent/testing';
import { ToolplaneClient, isToolplaneError, retryAfterMs, type CallRecord, type RunStreamEvent } from '@toolplane/client';
import { ADD_TOOL, ROOT, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';

const ADMIN_KEY = 'admin-key-for-client-tests-0123';

/** @toolplane/client against a real planner and worker (and a scripted model server for runs). */
describe('@toolplane/client', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  let llm: ScriptedModelServer;
  let planner: ServiceProcess;
  /** Same Redis and prefix, one request per second per key. */
  let strict: ServiceProcess;
  let worker: ServiceProcess;
  let tp: ToolplaneClient;

  beforeAll(async () => {
    llm = await startScriptedModelServer();
    [planner, worker] = await Promise.all([
      startPlanner({ ...env, TOOLPLANE_ADMIN_KEY: ADMIN_KEY, API_RATE_LIMIT_PER_S: '0', OPENAI_BASE_URL: llm.baseUrl, TOOLPLANE_MODEL: 'client-model' }),
      startWorker(env),
    ]);
    strict = await startPlanner({ ...env, TOOLPLANE_ADMIN_KEY: ADMIN_KEY, API_RATE_LIMIT_PER_S: '1' });
    tp = new ToolplaneClient({ baseUrl: planner.url, apiKey: ADMIN_KEY });
    await tp.tools.put('add', ADD_TOOL);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), strict?.kill(), worker?.kill()]);
    await llm?.close();
  });

  test('tools: put, list, get, versions', async () => {
    const v2 = await tp.tools.put('add', { ...ADD_TOOL, description: 'Adds two numbers, again' });
    expect(v2).toMatchObject({ name: 'add', version: 2, enabled: true });
    expect((await tp.tools.list()).map((t) => t.name)).toContain('add');
    expect((await tp.tools.listOpenAi()).find((t) => t.function.name === 'add')?.type).toBe('function');
    expect((await tp.tools.get('add')).stats).toBeDefined();
    expect((await tp.tools.versions('add')).map((v) => v.version)).toEqual([2, 1]);
  });

  test('calls: create then wait, run, create with wait, get, and version pinning', async () => {
    const accepted = await tp.calls.create({ tool: 'add', arguments: { a: 2, b: 3 } });
    expect(accepted.status).toBe('queued');
    const done = await tp.calls.wait(accepted.id);
    expect(done).toMatchObject({ id: accepted.id, status: 'succeeded', result: 5 });
    expect(await tp.calls.run({ tool: 'add', arguments: { a: 1, b: 1 } })).toMatchObject({ status: 'succeeded', result: 2 });
    const waited = (await tp.calls.create({ tool: 'add', arguments: { a: 4, b: 4 }, wait: true })) as CallRecord;
    expect(waited).toMatchObject({ status: 'succeeded', result: 8 });
    expect((await tp.calls.get(waited.id)).result).toBe(8);
    // A pinned version runs that version's code: v1 adds, v2 multiplies.
    await tp.tools.put('pin', ADD_TOOL);
    await tp.tools.put('pin', { ...ADD_TOOL, code: 'export default async function (args) { return args.a * args.b }' });
    expect(await tp.calls.run({ tool: 'pin', arguments: { a: 4, b: 5 }, version: 1 })).toMatchObject({ status: 'succeeded', result: 9, version: 1 });
    expect(await tp.calls.run({ tool: 'pin', arguments: { a: 4, b: 5 } })).toMatchObject({ status: 'succeeded', result: 20, version: 2 });
  });

  test('refusals are ToolplaneErrors with the stable code and status, and are not retried', async () => {
    const retries: number[] = [];
    const client = new ToolplaneClient({ baseUrl: planner.url, apiKey: ADMIN_KEY, onRetry: (r) => retries.push(r.status) });
    const refused = async (p: Promise<unknown>) => p.then(() => undefined, (err: unknown) => err);
    const missing = await refused(client.calls.create({ tool: 'no-such-tool', arguments: {} }));
    expect(isToolplaneError(missing) && [missing.code, missing.status]).toEqual(['TOOL_NOT_FOUND', 404]);
    const bad = await refused(client.calls.create({ tool: 'add', arguments: { a: 'two' } }));
    expect(isToolplaneError(bad) && [bad.code, bad.status]).toEqual(['INVALID_ARGUMENTS', 400]);
    expect(isToolplaneError(bad) && bad.details).toBeTruthy();
    const unknownVersion = await refused(client.calls.create({ tool: 'add', arguments: { a: 1, b: 1 }, version: 99 }));
    expect(isToolplaneError(unknownVersion) && unknownVersion.code).toBe('TOOL_NOT_FOUND');
    const noKey = await refused(new ToolplaneClient({ baseUrl: planner.url }).tools.list());
    expect(isToolplaneError(noKey) && [noKey.code, noKey.status]).toEqual(['UNAUTHORIZED', 401]);
    expect(retries).toEqual([]);
  });

  test('list is an async iterator over pages, newest first', async () => {
    await tp.tools.put('listed', ADD_TOOL);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await tp.calls.create({ tool: 'listed', arguments: { a: i, b: 0 }, delayMs: 60_000 })).id);
    const pages: number[] = [];
    for await (const page of tp.calls.list({ tool: 'listed', limit: 2 }).pages()) pages.push(page.calls.length);
    expect(pages).toEqual([2, 2, 1]);
    const seen: string[] = [];
    for await (const call of tp.calls.list({ tool: 'listed', limit: 2 })) seen.push(call.id);
    expect(seen).toEqual([...ids].reverse());
    for (const id of ids) await tp.calls.cancel(id);
  });

  test('cancel, retry and approve', async () => {
    const later = await tp.calls.create({ tool: 'add', arguments: { a: 1, b: 2 }, delayMs: 60_000 });
    expect((await tp.calls.cancel(later.id)).status).toBe('cancelled');

    await tp.tools.put('fails', { ...ADD_TOOL, code: 'export default () => { throw new Error("no") }', retries: { attempts: 1, backoffMs: 0 } });
    const failed = await tp.calls.run({ tool: 'fails', arguments: { a: 1, b: 2 } });
    expect(failed.error?.code).toBe('TOOL_ERROR');
    // The retried run may be over by the time the answer is read: this tool fails at once.
    const retried = await tp.calls.retry(failed.id);
    expect(['queued', 'running', 'failed']).toContain(retried.status);
    expect(await tp.calls.wait(failed.id)).toMatchObject({ status: 'failed', attempts: 1 });

    await tp.tools.put('guarded', { ...ADD_TOOL, requiresApproval: true });
    const held = await tp.calls.create({ tool: 'guarded', arguments: { a: 20, b: 22 } });
    let record = await tp.calls.get(held.id);
    for (let i = 0; i < 100 && record.status !== 'awaiting_approval'; i++) record = await tp.calls.get(held.id);
    expect(record.status).toBe('awaiting_approval');
    await tp.calls.approve(held.id, { argsHash: record.argsHash! });
    expect(await tp.calls.wait(held.id)).toMatchObject({ status: 'succeeded', result: 42 });
  });

  test('runs: create, then the events as an async iterator until finished', async () => {
    llm.script('client-model', [{ toolCalls: [{ id: 'c1', name: 'add', arguments: { a: 20, b: 22 } }] }, { content: 'It is 42.' }]);
    const { id } = await tp.runs.create({ input: 'What is 20 + 22?', tools: ['add'] });
    const events: RunStreamEvent[] = [];
    for await (const e of tp.runs.events(id)) events.push(e);
    const types = events.map((e) => e.event.type);
    expect(types).toContain('step');
    expect(types.at(-1)).toBe('finished');
    const last = events.at(-1)!.event;
    expect(last.type === 'finished' && last.run.finalAnswer).toBe('It is 42.');
    expect((await tp.runs.get(id)).status).toBe('succeeded');
    // Resumed from an event id, the stream starts after it.
    const resumed: RunStreamEvent[] = [];
    for await (const e of tp.runs.events(id, { lastEventId: events[0]!.id! })) resumed.push(e);
    expect(resumed.map((e) => e.id)).toEqual(events.slice(1).map((e) => e.id));
  });

  test('429 is retried after the Retry-After the planner sends; 503 with backoff, then thrown typed', async () => {
    const seen: Array<{ status: number; delayMs: number }> = [];
    const client = new ToolplaneClient({ baseUrl: strict.url, apiKey: ADMIN_KEY, onRetry: (r) => seen.push({ status: r.status, delayMs: r.delayMs }) });
    // One request per sliding second per key (estimated from two wall-clock seconds' counters): of four
    // at once one passes, or two when they straddle a second boundary; at least two wait their turn.
    const lists = await Promise.all(Array.from({ length: 4 }, () => client.tools.list()));
    expect(lists.every((l) => l.some((t) => t.name === 'add'))).toBe(true);
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen.every((s) => s.status === 429 && s.delayMs === 1_000)).toBe(true);

    // A tool an operator disabled answers 503 UNAVAILABLE (without Retry-After) every time.
    await tp.tools.put('switched-off', { ...ADD_TOOL, enabled: false });
    const unavailable: number[] = [];
    const patient = new ToolplaneClient({ baseUrl: planner.url, apiKey: ADMIN_KEY, maxRetries: 2, retryBaseMs: 20, onRetry: (r) => unavailable.push(r.status) });
    const err = await patient.calls.create({ tool: 'switched-off', arguments: { a: 1, b: 2 } }).then(() => undefined, (e: unknown) => e);
    expect(isToolplaneError(err) && [err.code, err.status]).toEqual(['UNAVAILABLE', 503]);
    expect(unavailable).toEqual([503, 503]);
  });

  test('Retry-After is read as seconds or as an HTTP date', () => {
    expect(retryAfterMs('3')).toBe(3_000);
    expect(retryAfterMs(new Date(Date.UTC(2030, 0, 1, 0, 0, 10)).toUTCString(), Date.UTC(2030, 0, 1, 0, 0, 0))).toBe(10_000);
    expect(retryAfterMs(null)).toBeUndefined();
    expect(retryAfterMs('soon')).toBeUndefined();
  });

  test('a client generated from GET /v1/openapi.json type-checks against the API and makes a call', async () => {
    const doc = (await (await fetch(`${planner.url}/v1/openapi.json`)).json()) as Parameters<typeof openapiTS>[0];
    // Inside test/, so the generated code resolves openapi-fetch from this package's dependencies.
    const dir = join(ROOT, 'test', `.generated-${randomUUID().slice(0, 8)}`);
    await mkdir(dir, { recursive: true });
    try {
      await writeFile(join(dir, 'api.d.ts'), astToString(await openapiTS(doc)));
      const caller = (body: string) => `import createClient from 'openapi-fetch';
import type { paths } from './api.js';
export async function call(baseUrl: string, key: string) {
  const client = createClient<paths>({ baseUrl, headers: { authorization: 'Bearer ' + key } });
  const { data, error } = await client.POST('/v1/calls', { body: ${body} });
  if (error) throw new Error(error.error.code);
  return data;
}
`;
      await writeFile(join(dir, 'call.ts'), caller("{ tool: 'add', arguments: { a: 2, b: 3 }, wait: true }"));
      await writeFile(join(dir, 'wrong.ts'), caller("{ tool: 'add', arguments: { a: 2, b: 3 }, wait: 'yes' }"));
      const options: ts.CompilerOptions = { strict: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, skipLibCheck: true, types: [] };
      const problems = (file: string) =>
        ts.getPreEmitDiagnostics(ts.createProgram([join(dir, file)], options)).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      expect(problems('call.ts')).toEqual([]);
      // The types are the API's: a body the schema refuses does not compile.
      expect(problems('wrong.ts').join('\n')).toMatch(/'string' is not assignable to type '.*boolean/);

      const js = ts.transpileModule(caller("{ tool: 'add', arguments: { a: 2, b: 3 }, wait: true }"), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
      await writeFile(join(dir, 'call.mjs'), js);
      const generated = (await import(pathToFileURL(join(dir, 'call.mjs')).href)) as { call: (base: string, key: string) => Promise<CallRecord> };
      expect(await generated.call(planner.url, ADMIN_KEY)).toMatchObject({ tool: 'add', status: 'succeeded', result: 5 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
