import { UpstreamSpec, type Upstream } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';

/**
 * MCP upstreams in one Redis hash, name → spec, so every planner and worker replica sees the same
 * ones. Header values are kept as given: `secret:NAME` references (resolved when connecting) or
 * literals. Neither is ever returned by the API.
 */
export class UpstreamStore {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
  ) {}

  /** Registers or replaces an upstream; `created` is true when none of that name existed. */
  async put(name: string, spec: UpstreamSpec): Promise<{ upstream: Upstream; created: boolean }> {
    const now = new Date().toISOString();
    const previous = await this.get(name);
    const upstream: Upstream = { ...spec, name, createdAt: previous?.createdAt ?? now, updatedAt: now };
    await this.redis.hset(this.keys.upstreams, name, JSON.stringify(upstream));
    return { upstream, created: previous === undefined };
  }

  async get(name: string): Promise<Upstream | undefined> {
    const raw = await this.redis.hget(this.keys.upstreams, name);
    return raw === null ? undefined : decode(name, raw);
  }

  /** Every upstream, sorted by name. */
  async list(): Promise<Upstream[]> {
    const all = await this.redis.hgetall(this.keys.upstreams);
    return Object.keys(all)
      .sort()
      .map((name) => decode(name, all[name]!));
  }

  async delete(name: string): Promise<boolean> {
    return (await this.redis.hdel(this.keys.upstreams, name)) === 1;
  }
}

function decode(name: string, raw: string): Upstream {
  const { createdAt, updatedAt, ...spec } = JSON.parse(raw) as Upstream;
  return { ...UpstreamSpec.parse(spec), name, createdAt, updatedAt };
}
