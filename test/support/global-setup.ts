import type { TestProject } from 'vitest/node';
import { startRedisServer, type RedisServer } from '@toolplane/queue/testing';

let redis: RedisServer | undefined;

/** One real redis-server on a free port for the whole run; suites isolate themselves by key prefix. */
export async function setup(project: TestProject): Promise<void> {
  redis = await startRedisServer();
  project.provide('redisUrl', redis.url);
}

export async function teardown(): Promise<void> {
  await redis?.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}
