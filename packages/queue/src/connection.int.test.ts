import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import type { Redis } from 'ioredis';
import { closeRedis, coalesceWrites, createRedisConnection, waitForRedis } from './connection.js';

/** Counts the socket writes that reach the kernel (a corked batch is one `_writev`). */
function countWrites(conn: Redis): () => number {
  const socket = conn.stream as unknown as { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };
  let n = 0;
  for (const name of ['_write', '_writev'] as const) {
    const original = socket[name];
    socket[name] = function (this: unknown, ...args: unknown[]) {
      n++;
      return original.apply(this, args);
    };
  }
  return () => n;
}

let conn: Redis;
let other: Redis;

beforeAll(async () => {
  conn = createRedisConnection(inject('redisUrl'), 'worker') as Redis;
  other = createRedisConnection(inject('redisUrl'), 'worker') as Redis;
  coalesceWrites(conn);
  await Promise.all([waitForRedis(conn), waitForRedis(other)]);
});
afterAll(async () => {
  await Promise.all([conn, other].map((c) => c && closeRedis(c)));
});

test('the commands of one turn leave in one write, in order, and get their own replies', async () => {
  const key = `coalesce:${Date.now()}`;
  const writes = countWrites(conn);
  const replies = await Promise.all([conn.set(key, 'a'), conn.append(key, 'b'), conn.append(key, 'c'), conn.get(key), conn.del(key)]);
  expect(replies).toEqual(['OK', 2, 3, 'abc', 1]);
  expect(writes()).toBe(1);
  // Commands issued after an await are the next turn's batch.
  await conn.set(key, 'x');
  await conn.get(key);
  expect(writes()).toBe(3);
});

test('a reconnect brings a new socket, which is coalesced too', async () => {
  const name = `coalesce-${Date.now()}`;
  await conn.client('SETNAME', name);
  const reconnected = new Promise((resolve) => conn.once('ready', resolve));
  const list = (await other.client('LIST')) as string;
  const id = /id=(\d+) [^\n]*name=coalesce-/.exec(list.split('\n').find((l) => l.includes(`name=${name}`)) ?? '')?.[1];
  expect(id).toBeDefined();
  await other.client('KILL', 'ID', id!);
  await reconnected;
  const writes = countWrites(conn);
  expect(await Promise.all([conn.ping(), conn.ping('b'), conn.echo('c')])).toEqual(['PONG', 'b', 'c']);
  expect(writes()).toBe(1);
});
