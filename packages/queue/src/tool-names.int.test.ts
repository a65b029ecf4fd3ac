import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { ToolSpec } from '@toolplane/core';
import { closeRedis, createRedisConnection, waitForRedis, type RedisConnection } from './connection.js';
import { createKeys } from './keys.js';
import { ToolRegistry } from './registry.js';
import { startRedisServer, type RedisServer } from './testing/index.js';
import { ToolNames } from './tool-names.js';

/**
 * Tool names held from change notices, on a redis-server of this file's own so that its command
 * counts are the names' alone: a change costs one look at its name, whatever the number of tools.
 */
let server: RedisServer;
let redis: RedisConnection;
const subscribers: RedisConnection[] = [];
beforeAll(async () => {
  server = await startRedisServer();
  redis = createRedisConnection(server.url, 'worker');
  await waitForRedis(redis);
});
afterAll(async () => {
  await Promise.all([redis, ...subscribers].map((c) => closeRedis(c)));
  await server.stop();
});

const SPEC = ToolSpec.parse({ description: 'd', parameters: { type: 'object' }, code: 'export default () => 1' });

/** A registry on its own keys, and names following it through a subscriber of their own. */
async function setup(registry?: (keys: ReturnType<typeof createKeys>) => ToolRegistry) {
  const keys = createKeys(`tn-${randomUUID().slice(0, 8)}`);
  const subscriberName = `tn-sub-${randomUUID().slice(0, 8)}`;
  const subscriber = createRedisConnection(server.url, 'subscriber', subscriberName);
  subscribers.push(subscriber);
  await waitForRedis(subscriber);
  const writer = new ToolRegistry(redis, keys);
  const names = new ToolNames(registry?.(keys) ?? new ToolRegistry(redis, keys), subscriber, keys);
  const seen: string[] = [];
  names.on('added', (n) => seen.push(`+${n}`));
  names.on('removed', (n) => seen.push(`-${n}`));
  return { keys, writer, names, seen, subscriberName };
}

async function commandCalls(command: string): Promise<number> {
  const stats = await redis.info('commandstats');
  return Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(stats)?.[1] ?? 0);
}

test('names known at start, then each change as one look at its name: no read of every name', async () => {
  const t = await setup();
  for (let i = 0; i < 2_500; i++) await t.writer.put(`early${i}`, SPEC);
  const scansBefore = await commandCalls('hscan');
  await t.names.start();
  // 2,500 names in pages of about 1,000 (a hint to Redis): a few reads, none holding Redis for the whole registry.
  const pages = (await commandCalls('hscan')) - scansBefore;
  expect(pages).toBeGreaterThanOrEqual(3);
  expect(pages).toBeLessThanOrEqual(8);
  expect(t.names.size).toBe(2_500);
  expect(await commandCalls('hkeys')).toBe(0);

  const [scans, looks] = [await commandCalls('hscan'), await commandCalls('hexists')];
  await t.writer.put('late', SPEC);
  await t.writer.put('early7', SPEC); // a new version of a known tool
  expect(await t.writer.delete('early3')).toBe(true);
  await vi.waitFor(() => expect(t.seen.slice(-2)).toEqual(['+late', '-early3']), { timeout: 5_000, interval: 5 });
  expect(t.names.has('late')).toBe(true);
  expect(t.names.has('early3')).toBe(false);
  expect(t.names.size).toBe(2_500);
  // One look per notice (each registration's script makes one more of its own).
  expect((await commandCalls('hexists')) - looks).toBe(3 + 2);
  expect((await commandCalls('hscan')) - scans).toBe(0);
  t.names.stop();
});

test('changes made while the subscriber was away are made up for when it is back', async () => {
  const t = await setup();
  await t.writer.put('stays', SPEC);
  await t.writer.put('goes', SPEC);
  await t.names.start();
  const list = (await redis.client('LIST')) as string;
  const id = new RegExp(`id=(\\d+) .*name=${t.subscriberName}`).exec(list)?.[1];
  expect(id).toBeDefined();
  await redis.client('KILL', 'ID', id!);
  // Published at once, before the subscriber is back: nobody hears these notices.
  await t.writer.put('new', SPEC);
  await t.writer.delete('goes');
  await vi.waitFor(() => expect(t.names.list().sort()).toEqual(['new', 'stays']), { timeout: 5_000, interval: 10 });
  t.names.stop();
});

test('a full read under way does not undo a change heard meanwhile', async () => {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let readDone!: () => void;
  const read = new Promise<void>((r) => (readDone = r));
  let hold = false;
  /** Its full read returns what Redis held when it read, but only once released. */
  class SlowRegistry extends ToolRegistry {
    override async names(): Promise<string[]> {
      const names = await super.names();
      if (hold) {
        readDone();
        await held;
      }
      return names;
    }
  }
  const t = await setup((keys) => new SlowRegistry(redis, keys));
  await t.writer.put('doomed', SPEC);
  await t.names.start();
  hold = true;
  const reading = t.names.refresh();
  // The read has 'doomed'; its delete (and a registration) are heard before the read is applied.
  await read;
  await t.writer.delete('doomed');
  await t.writer.put('born', SPEC);
  await vi.waitFor(() => expect(t.seen).toContain('-doomed'), { timeout: 5_000, interval: 5 });
  release();
  await reading;
  expect(t.names.list().sort()).toEqual(['born']);
  expect(t.seen).toEqual(['+doomed', '-doomed', '+born']);
  t.names.stop();
});
