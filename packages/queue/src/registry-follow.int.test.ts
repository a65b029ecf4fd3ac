import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, inject, test, vi } from 'vitest';
import { ToolSpec } from '@toolplane/core';
import { closeRedis, createRedisConnection, waitForRedis, type RedisConnection } from './connection.js';
import { createKeys } from './keys.js';
import { ToolRegistry } from './registry.js';
import { freshPrefix } from '../../../test/support/redis.js';

/**
 * A registry that follows changes answers `get` from memory, and still sees every change: its own
 * at once, another replica's once the message arrives, and those made while its subscriber was away.
 */
let redis: RedisConnection;
let followerRedis: RedisConnection;
let subscriber: RedisConnection;
const keys = createKeys(freshPrefix('rf'));
const subscriberName = `rf-sub-${randomUUID().slice(0, 8)}`;
let follower: ToolRegistry;
/** Another replica: its changes reach the follower only through Redis. */
let other: ToolRegistry;

beforeAll(async () => {
  redis = createRedisConnection(inject('redisUrl'), 'worker');
  followerRedis = createRedisConnection(inject('redisUrl'), 'worker');
  subscriber = createRedisConnection(inject('redisUrl'), 'subscriber', subscriberName);
  await Promise.all([redis, followerRedis, subscriber].map((c) => waitForRedis(c)));
  follower = new ToolRegistry(followerRedis, keys);
  other = new ToolRegistry(redis, keys);
  await follower.followChanges(subscriber);
});
afterAll(async () => {
  await Promise.all([redis, followerRedis, subscriber].map((c) => c && closeRedis(c)));
});

const spec = (n: number) => ToolSpec.parse({ description: 'd', parameters: { type: 'object' }, code: `export default () => ${n}` });
const versionOf = async (name: string) => (await follower.get(name))?.version;

test('a tool read once is answered from memory; a name with no tool is asked each time, and not kept', async () => {
  await other.put('kept', spec(1));
  // Its message may arrive after a first read and make it read once more: let it arrive first. Messages
  // come in order, so once a later change of another tool has been heard, this one has been too.
  await other.put('later', spec(1));
  expect(await versionOf('later')).toBe(1);
  await other.put('later', spec(2));
  await vi.waitFor(async () => expect(await versionOf('later')).toBe(2), { timeout: 5_000, interval: 5 });
  expect(await versionOf('kept')).toBe(1);
  expect(await versionOf('never-made')).toBeUndefined();
  const reads = vi.spyOn(followerRedis, 'hget');
  try {
    for (let i = 0; i < 10; i++) expect(await versionOf('kept')).toBe(1);
    expect(reads).not.toHaveBeenCalled();
    // Anyone may ask for any name: misses are not kept, so the memory stays as small as the registry.
    for (let i = 0; i < 10; i++) expect(await versionOf(`never-made-${i}`)).toBeUndefined();
    expect(reads).toHaveBeenCalledTimes(10);
  } finally {
    reads.mockRestore();
  }
});

test("another replica's new version, delete and registration are seen once their message arrives", async () => {
  await other.put('moved', spec(1));
  expect(await versionOf('moved')).toBe(1);
  await other.put('moved', spec(2));
  await vi.waitFor(async () => expect(await versionOf('moved')).toBe(2), { timeout: 5_000, interval: 5 });
  await other.delete('moved');
  await vi.waitFor(async () => expect(await versionOf('moved')).toBeUndefined(), { timeout: 5_000, interval: 5 });
  await other.put('moved', spec(3));
  await vi.waitFor(async () => expect(await versionOf('moved')).toBe(3), { timeout: 5_000, interval: 5 });
});

test('its own changes are seen at once', async () => {
  await follower.put('own', spec(1));
  expect(await versionOf('own')).toBe(1);
  await follower.put('own', spec(2));
  expect(await versionOf('own')).toBe(2);
  await follower.rollback('own', 1);
  expect(await versionOf('own')).toBe(3);
  await follower.delete('own');
  expect(await versionOf('own')).toBeUndefined();
});

test('changes made while the subscriber was disconnected are not missed', async () => {
  await other.put('away', spec(1));
  expect(await versionOf('away')).toBe(1);
  const closed = new Promise((resolve) => subscriber.once('close', resolve));
  const back = new Promise((resolve) => subscriber.once('ready', resolve));
  const list = (await redis.client('LIST')) as string;
  const id = /^id=(\d+) /.exec(list.split('\n').find((l) => l.includes(` name=${subscriberName} `)) ?? '')?.[1];
  expect(id).toBeDefined();
  await redis.client('KILL', 'ID', id!);
  await closed;
  // The message of this change goes nowhere: nobody on this replica is subscribed.
  await other.put('away', spec(2));
  expect(await versionOf('away')).toBe(2);
  await back;
  await vi.waitFor(async () => expect(await versionOf('away')).toBe(2), { timeout: 5_000, interval: 5 });
  await other.put('away', spec(3));
  await vi.waitFor(async () => expect(await versionOf('away')).toBe(3), { timeout: 5_000, interval: 5 });
});
