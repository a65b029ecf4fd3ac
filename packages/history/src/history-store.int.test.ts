import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { CallRecord } from '@toolplane/core';
import { storeFactory, type StoreFactory } from './testing/index.js';
import { MIGRATIONS, SCHEMA_VERSION, pendingMigrations } from './migrations.js';
import type { ArchivedCall, HistoryDriver } from './types.js';

const T0 = Date.UTC(2026, 0, 1);
const DAY_MS = 86_400_000;

function call(i: number, over: Partial<CallRecord> & { tenant?: string } = {}): ArchivedCall {
  const createdAt = T0 + Math.floor(i / 3) * 1000; // three calls share each millisecond: ties by id
  const record = {
    id: `c${String(i).padStart(25, '0')}`,
    tool: i % 2 === 0 ? 'even' : 'odd',
    version: 1,
    status: i % 5 === 0 ? 'failed' : 'succeeded',
    tenant: 'acme',
    argsHash: (i % 7).toString(16).padStart(64, '0'),
    attempts: 1,
    createdAt: new Date(createdAt).toISOString(),
    timings: { queuedMs: 1, runMs: 2 },
    ...(i % 5 === 0 ? { error: { code: 'TIMEOUT', message: 'too slow', retryable: false } } : { result: { i } }),
    ...over,
  } as CallRecord & { tenant: string };
  return { record, finishedAt: createdAt + 3 };
}

/** Every page of a listing, by cursor, as the API pages. */
async function pageAll(f: (after?: { createdAt: number; id: string }) => Promise<{ calls: CallRecord[]; more: boolean }>) {
  const out: CallRecord[] = [];
  let after: { createdAt: number; id: string } | undefined;
  for (;;) {
    const page = await f(after);
    out.push(...page.calls);
    const last = page.calls.at(-1);
    if (!page.more || !last) return out;
    after = { createdAt: Date.parse(last.createdAt), id: last.id };
  }
}

// One factory (one Postgres server) per driver for the whole file, made when a test first needs it.
const factories = new Map<HistoryDriver, Promise<StoreFactory>>();
function factoryOf(driver: HistoryDriver): Promise<StoreFactory> {
  let f = factories.get(driver);
  if (f === undefined) factories.set(driver, (f = storeFactory(driver)));
  return f;
}
afterAll(async () => {
  await Promise.all([...factories.values()].map(async (f) => (await f).close()));
});

// The same suite against both drivers: the embedded SQLite file and a real Postgres.
describe.each<HistoryDriver>(['sqlite', 'postgres'])('history store (%s)', (driver) => {
  let factory: StoreFactory;
  beforeAll(async () => {
    factory = await factoryOf(driver);
  });

  test('migrations are versioned and applied once, however often the store starts', async () => {
    const store = await factory.open();
    expect(await store.migrate()).toBe(SCHEMA_VERSION);
    expect(await store.migrate()).toBe(SCHEMA_VERSION);
    expect(MIGRATIONS.map((m) => m.version)).toEqual([...MIGRATIONS.keys()].map((i) => i + 1));
  });

  test('a store opened again over the same database runs no migration again', async () => {
    const first = await factory.open();
    await first.putCalls([call(1)]);
    const before = await factory.inspect(first);
    expect(before.ledger.map((r) => [r.version, r.name])).toEqual(MIGRATIONS.map((m) => [m.version, m.name]));
    // A second process starting (and a restart): the same ledger, each version with the time it was
    // first applied, and the data written before is there.
    const second = await factory.reopen(first);
    expect(await second.migrate()).toBe(SCHEMA_VERSION);
    expect(await factory.inspect(second)).toEqual(before);
    expect(await second.getCall(call(1).record.id)).toEqual(call(1).record);
  });

  test('writes are idempotent by id: a batch written twice leaves one row each, with the last write', async () => {
    const store = await factory.open();
    const batch = Array.from({ length: 50 }, (_, i) => call(i));
    await store.putCalls(batch);
    await store.putCalls(batch);
    await store.putCalls([call(1, { status: 'failed', error: { code: 'CANCELLED', message: 'x', retryable: false } })]);
    expect(await store.countCalls()).toBe(50);
    expect((await store.getCall(batch[1]!.record.id))?.status).toBe('failed');
    expect(await store.getCall(batch[2]!.record.id)).toEqual(batch[2]!.record);
    expect(await store.getCall('nope')).toBeUndefined();
  });

  test('listing pages by cursor over (createdAt, id), newest first, each call once, one tenant only', async () => {
    const store = await factory.open();
    const mine = Array.from({ length: 120 }, (_, i) => call(i));
    const theirs = Array.from({ length: 40 }, (_, i) => call(1000 + i, { tenant: 'other' }));
    await store.putCalls([...mine, ...theirs]);
    const listed = await pageAll((after) => store.listCalls({ tenant: 'acme', limit: 7, ...(after ? { after } : {}) }));
    const expected = mine
      .map((c) => c.record)
      .sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt) || (a.id < b.id ? 1 : -1));
    expect(listed.map((c) => c.id)).toEqual(expected.map((c) => c.id));
    expect((await store.listCalls({ tenant: 'nobody', limit: 10 })).calls).toEqual([]);
  });

  test('filters: tool, status, error code, argument hash, time range', async () => {
    const store = await factory.open();
    const all = Array.from({ length: 60 }, (_, i) => call(i));
    await store.putCalls(all);
    const ids = async (q: Parameters<typeof store.listCalls>[0]) => (await pageAll((after) => store.listCalls({ ...q, ...(after ? { after } : {}) }))).map((c) => c.id).sort();
    const want = (pred: (r: CallRecord) => boolean) => all.map((c) => c.record).filter(pred).map((r) => r.id).sort();
    expect(await ids({ tenant: 'acme', limit: 9, tool: 'even' })).toEqual(want((r) => r.tool === 'even'));
    expect(await ids({ tenant: 'acme', limit: 9, status: 'failed' })).toEqual(want((r) => r.status === 'failed'));
    expect(await ids({ tenant: 'acme', limit: 9, errorCode: 'TIMEOUT' })).toEqual(want((r) => r.error?.code === 'TIMEOUT'));
    const hash = all[3]!.record.argsHash!;
    expect(await ids({ tenant: 'acme', limit: 9, argsHash: hash })).toEqual(want((r) => r.argsHash === hash));
    const [since, until] = [T0 + 5_000, T0 + 10_000];
    expect(await ids({ tenant: 'acme', limit: 4, since, until, tool: 'odd' })).toEqual(
      want((r) => Date.parse(r.createdAt) >= since && Date.parse(r.createdAt) <= until && r.tool === 'odd'),
    );
  });

  test('EXPLAIN: the listing reads the tenant index range, never the whole table', async () => {
    const store = await factory.open();
    await store.putCalls(Array.from({ length: 2_000 }, (_, i) => call(i, { tenant: `t${i % 20}` })));
    const plan = await store.explainListCalls({ tenant: 't3', limit: 50, after: { createdAt: T0 + 100_000, id: 'z' } });
    const planTool = await store.explainListCalls({ tenant: 't3', tool: 'odd', limit: 50 });
    if (driver === 'sqlite') {
      expect(plan).toMatch(/SEARCH calls USING INDEX calls_by_tenant \(tenant=\?/);
      expect(plan).not.toMatch(/SCAN calls|TEMP B-TREE/);
      expect(planTool).toMatch(/USING INDEX calls_by_tenant_tool \(tenant=\? AND tool=\?/);
    } else {
      // An index scan of the tenant's range (a bitmap scan on a table this small, sorting a handful of rows).
      expect(plan).toMatch(/Index Scan on calls_by_tenant /);
      expect(plan).toMatch(/Index Cond: \(\(tenant = 't3'::text\) AND \(ROW\(created_at, id\) < /);
      expect(plan).not.toMatch(/Seq Scan/);
      expect(planTool).toMatch(/calls_by_tenant_tool/);
    }
  });

  test('retention per tenant: the purge deletes what is older than each tenant keeps, nothing else', async () => {
    const store = await factory.open();
    const now = T0 + 40 * DAY_MS;
    const at = (daysAgo: number, i: number, tenant: string) => call(i, { tenant, createdAt: new Date(now - daysAgo * DAY_MS).toISOString() });
    await store.putCalls([at(35, 1, 'a'), at(20, 2, 'a'), at(35, 3, 'b'), at(20, 4, 'b'), at(5, 5, 'b')]);
    await store.setRetentionDays('b', 10);
    expect(await store.retentionDays('a')).toBe(30);
    expect(await store.retentionDays('b')).toBe(10);
    expect(await store.purge(now)).toBe(3);
    expect(await store.countCalls('a')).toBe(1);
    expect(await store.countCalls('b')).toBe(1);
  });

  test('agent runs with their steps are kept by id, idempotently', async () => {
    const store = await factory.open();
    const run = { id: 'run1', tenant: 'acme', status: 'succeeded', createdAt: T0, finishedAt: T0 + 5, run: { id: 'run1', answer: 42 }, events: [{ type: 'step', n: 1 }] };
    await store.putRuns([run]);
    await store.putRuns([run]);
    expect(await store.getRun('run1')).toEqual(run);
    expect(await store.getRun('run2')).toBeUndefined();
  });
});

describe('one migration list for both drivers', () => {
  test('SQLite and Postgres end at the same schema version, with the same tables, columns and indexes', async () => {
    const [sqlite, postgres] = await Promise.all([factoryOf('sqlite'), factoryOf('postgres')]);
    const [a, b] = await Promise.all([sqlite.open(), postgres.open()]);
    expect([await a.migrate(), await b.migrate()]).toEqual([SCHEMA_VERSION, SCHEMA_VERSION]);
    const [s, p] = await Promise.all([sqlite.inspect(a), postgres.inspect(b)]);
    const versions = (x: typeof s) => x.ledger.map((r) => [r.version, r.name]);
    expect(versions(s)).toEqual(versions(p));
    expect(s.ledger.at(-1)!.version).toBe(SCHEMA_VERSION);
    expect(s.tables).toEqual(p.tables);
    expect(Object.keys(s.tables).sort()).toEqual(['calls', 'history_migrations', 'runs', 'tenant_settings']);
    expect(s.indexes).toEqual(p.indexes);
    expect(s.indexes).toEqual(['calls_by_tenant', 'calls_by_tenant_args', 'calls_by_tenant_tool', 'runs_by_tenant']);
  });

  test('only the versions missing from the ledger are pending, in order, each in its dialect', () => {
    expect(pendingMigrations('sqlite', [1]).map((m) => m.version)).toEqual([2]);
    expect(pendingMigrations('postgres', [2, 1])).toEqual([]);
    const [calls] = pendingMigrations('postgres', []);
    expect(calls!.sql).toMatch(/record JSONB NOT NULL/);
    expect(calls!.sql).toMatch(/created_at BIGINT NOT NULL/);
    expect(pendingMigrations('sqlite', [])[0]!.sql).toMatch(/record TEXT NOT NULL/);
  });
});
