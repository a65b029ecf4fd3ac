import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RedisConnection } from './connection.js';

/**
 * A Lua script run by its SHA (`EVALSHA`), so the hot path sends a 40-byte hash instead of the
 * whole source on every call; the source goes out once per Redis node, when the node answers NOSCRIPT
 * (after a restart, or on another cluster master).
 */
export class LuaScript {
  private readonly sha: string;

  constructor(private readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /**
   * A script from `src/lua/<name>.lua` (copied next to the compiled code by the build), named
   * `<command>-<numKeys>` with a header listing its keys and arguments, as bullmq names its scripts.
   */
  static fromFile(name: string): LuaScript {
    return new LuaScript(readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8'));
  }

  async run(redis: RedisConnection, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err: unknown) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}
