import { afterAll, beforeAll, expect, test } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { ToolSpec, type Tool } from '@toolplane/core';
import { createCalls, type Calls } from './calls.js';
import { closeRedis, coalesceWrites, createRedisConnection, waitForRedis, type RedisConnection } from './connection.js';
import { createKeys, type Keys } from './keys.js';
import { ToolRegistry } from './registry.js';
import { startRedisServer, type RedisServer } from './testing/index.js';
import { ToolWakeups } from './tool-wakeups.js';
import { commandsDuring, type MonitoredCommand } from '../../../test/support/redis-monitor.js';
import { freshPrefix } from '../../../test/support/redis.js';

// A Redis of this file's own: one test flushes its scripts, which would change what other files'
// tests count. The connection is set up as the planner's (one socket write per turn).
let server: RedisServer;
let redis: RedisConnection;
let keys: Keys;
let calls: Calls;
let tool: Tool;

beforeAll(async () => {
  server = await startRedisServer();
  redis = createRedisConnection(server.url, 'client');
  coalesceWrites(redis);
  await waitForRedis(redis);
  keys = createKeys(freshPrefix());
  ({ tool } = await new ToolRegistry(redis, keys).put(
    'add',
    ToolSpec.parse({ description: 'adds', parameters: { type: 'object' }, code: 'export default () => 1' }),
  ));
  calls = createCalls(redis, keys);
});
afterAll(async () => {
  await calls?.queues.queue('add').close();
  if (redis) await closeRedis(redis);
  await server?.stop();
});

const jobKey = (id: string) => `${keys.bullPrefix}:${keys.queueName('add')}:${id}`;
/** The commands that touched the ready set, in the order Redis ran them (`lua`: inside a script). */
const readySetWrites = (commands: MonitoredCommand[]) =>
  commands.filter((c) => c.args.includes(keys.readyTools)).map((c) => `${c.source === 'lua' ? 'lua ' : ''}${c.args[0]!.toLowerCase()}`);

test('a wake sent behind its job finds it and wakes the tool at once', async () => {
  const wakeups = new ToolWakeups(redis, keys);
  // Its first run loads the script into this fresh Redis (NOSCRIPT, then EVAL).
  await wakeups.wakeBehind(redis.hset(jobKey('j0'), 'name', 'call'), 'behind', jobKey('j0'));
  await redis.zrem(keys.readyTools, 'behind');
  const commands = await commandsDuring(server.url, redis, async () => {
    await wakeups.wakeBehind(redis.hset(jobKey('j1'), 'name', 'call'), 'behind', jobKey('j1'));
  });
  expect(readySetWrites(commands)).toEqual(['evalsha', 'lua zadd']);
  expect(await redis.zscore(keys.readyTools, 'behind')).not.toBeNull();
});

test('a wake that arrives before its job wakes nothing, and wakes the tool once the add is done', async () => {
  const wakeups = new ToolWakeups(redis, keys);
  await redis.zrem(keys.readyTools, 'late');
  const commands = await commandsDuring(server.url, redis, async () => {
    const add = sleep(50).then(() => redis.hset(jobKey('j2'), 'name', 'call'));
    await wakeups.wakeBehind(add, 'late', jobKey('j2'));
  });
  // The script found no job and wrote nothing; the plain wake came after the job's write.
  expect(readySetWrites(commands)).toEqual(['evalsha', 'zadd']);
  const order = commands.filter((c) => c.source !== 'lua').map((c) => c.args[0]!.toLowerCase());
  expect(order.indexOf('hset')).toBeLessThan(order.lastIndexOf('zadd'));
  expect(await redis.zscore(keys.readyTools, 'late')).not.toBeNull();
});

test("a new call's wake follows BullMQ's add on the same connection without waiting for its reply", async () => {
  // The tool's first call opens its queue; the next ones are what a running planner does.
  await calls.producer.enqueue(tool, { a: 0 }, { tenant: 'acme' });
  await redis.zrem(keys.readyTools, 'add');
  let id = '';
  const commands = await commandsDuring(server.url, redis, async () => {
    ({ id } = await calls.producer.enqueue(tool, { a: 1 }, { tenant: 'acme' }));
  });
  expect(readySetWrites(commands)).toEqual(['evalsha', 'lua zadd']);
  expect(await redis.exists(jobKey(id))).toBe(1);
  expect(await redis.zscore(keys.readyTools, 'add')).not.toBeNull();
});

test('with its scripts gone from Redis (a restart, SCRIPT FLUSH), a new call is still woken once it exists', async () => {
  for (let i = 0; i < 3; i++) {
    await redis.zrem(keys.readyTools, 'add');
    await redis.script('FLUSH');
    const { id } = await calls.producer.enqueue(tool, { a: 2 + i }, { tenant: 'acme' });
    expect(await redis.exists(jobKey(id))).toBe(1);
    expect(await redis.zscore(keys.readyTools, 'add')).not.toBeNull();
  }
});

test('a call due later goes to the timers after its add, not to the ready set', async () => {
  await redis.zrem(keys.readyTools, 'add');
  await calls.producer.enqueue(tool, { a: 9 }, { tenant: 'acme', delayMs: 60_000 });
  expect(await redis.zscore(keys.readyTools, 'add')).toBeNull();
  expect(Number(await redis.zscore(keys.toolTimers, 'add'))).toBeGreaterThan(Date.now() + 50_000);
});
