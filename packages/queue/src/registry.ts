import { DEFAULT_TENANT, ToolSpec, type Tool } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';

/*
 * KEYS[1] seq hash, KEYS[2] current hash, KEYS[3] spec hash
 * ARGV[1] tool name, ARGV[2] spec JSON (with createdAt), ARGV[3] change channel
 * Returns {version, existedBefore}.
 */
const PUT_TOOL = `
local existed = redis.call('HEXISTS', KEYS[2], ARGV[1])
local v = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HSET', KEYS[3], ARGV[1] .. '@' .. v, ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], v)
redis.call('PUBLISH', ARGV[3], ARGV[1])
return {v, existed}
`;

type StoredSpec = ToolSpec & { createdAt: string; tenant?: string };

export type ToolRegistryOptions = {
  /**
   * Ceiling on every tool's `limits.maxResultBytes`: a tool that asks for more gets this, so no tool
   * can produce results larger than the operator allows (the worker sets it from `MAX_RESULT_BYTES`).
   * @default no ceiling beyond the schema's 16 MiB
   */
  maxResultBytes?: number;
};

/**
 * The tool registry, in Redis so every planner and worker replica sees the same tools.
 * Each version of a tool is kept immutable under `name@version`: a call queued before a replace
 * still runs the code it was validated against, and workers can cache versions forever.
 */
export class ToolRegistry {
  private readonly specCache = new Map<string, Tool>();

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
    private readonly opts: ToolRegistryOptions = {},
  ) {}

  /** Registers or replaces a tool; `created` is true when no tool of that name existed. */
  async put(name: string, spec: ToolSpec, tenant = DEFAULT_TENANT): Promise<{ tool: Tool; created: boolean }> {
    const stored: StoredSpec = { ...spec, createdAt: new Date().toISOString(), tenant };
    const [version, existed] = (await this.redis.eval(
      PUT_TOOL,
      3,
      this.keys.registrySeq,
      this.keys.registryCurrent,
      this.keys.registrySpecs,
      name,
      JSON.stringify(stored),
      this.keys.registryChanged,
    )) as [number, number];
    const tool = this.withCeilings({ ...spec, createdAt: stored.createdAt, tenant, name, version });
    this.specCache.set(`${name}@${version}`, tool);
    return { tool, created: existed === 0 };
  }

  /** The current version of a tool, or `undefined`. */
  async get(name: string): Promise<Tool | undefined> {
    const version = await this.redis.hget(this.keys.registryCurrent, name);
    if (version === null) return undefined;
    return this.getVersion(name, Number(version));
  }

  /** One exact version of a tool; versions never change, so they are cached. */
  async getVersion(name: string, version: number): Promise<Tool | undefined> {
    const key = `${name}@${version}`;
    const cached = this.specCache.get(key);
    if (cached) return cached;
    const raw = await this.redis.hget(this.keys.registrySpecs, key);
    if (raw === null) return undefined;
    const tool = this.decode(name, version, raw);
    this.specCache.set(key, tool);
    return tool;
  }

  async list(): Promise<Tool[]> {
    const current = await this.redis.hgetall(this.keys.registryCurrent);
    const names = Object.keys(current).sort();
    if (names.length === 0) return [];
    const fields = names.map((n) => `${n}@${current[n]}`);
    const raws = await this.redis.hmget(this.keys.registrySpecs, ...fields);
    const tools: Tool[] = [];
    names.forEach((name, i) => {
      const raw = raws[i];
      if (raw) tools.push(this.decode(name, Number(current[name]), raw));
    });
    return tools;
  }

  /**
   * The tenant of a name's latest version, current or deleted (so a delete can be told to the right
   * tenant too); `undefined` when the name was never registered.
   */
  async ownerOf(name: string): Promise<string | undefined> {
    const latest = await this.redis.hget(this.keys.registrySeq, name);
    if (latest === null) return undefined;
    return (await this.getVersion(name, Number(latest)))?.tenant;
  }

  /** Names of the current tools only: cheap enough to poll. */
  async names(): Promise<string[]> {
    return this.redis.hkeys(this.keys.registryCurrent);
  }

  /** Removes a tool; its old versions stay readable for calls already queued. */
  async delete(name: string): Promise<boolean> {
    const removed = await this.redis.hdel(this.keys.registryCurrent, name);
    if (removed) await this.redis.publish(this.keys.registryChanged, name);
    return removed === 1;
  }

  private decode(name: string, version: number, raw: string): Tool {
    const { createdAt, tenant, ...spec } = JSON.parse(raw) as StoredSpec;
    return this.withCeilings({ ...ToolSpec.parse(spec), createdAt, tenant: tenant ?? DEFAULT_TENANT, name, version });
  }

  /** The tool as it may run here: its limits clamped to the operator's ceilings. */
  private withCeilings(tool: Tool): Tool {
    const max = this.opts.maxResultBytes;
    if (max === undefined || tool.limits.maxResultBytes <= max) return tool;
    return { ...tool, limits: { ...tool.limits, maxResultBytes: max } };
  }
}

/**
 * Calls `onChange(toolName)` whenever a tool is added, replaced or removed on any replica.
 * `subscriber` must be a connection in subscriber mode; other channels on it are left alone.
 * Returns a function that stops listening (the subscription itself stays, others may share it).
 */
export async function watchToolChanges(
  subscriber: RedisConnection,
  keys: Keys,
  onChange: (tool: string) => void,
): Promise<() => void> {
  const listener = (channel: string, message: string) => {
    if (channel === keys.registryChanged) onChange(message);
  };
  subscriber.on('message', listener);
  await subscriber.subscribe(keys.registryChanged);
  return () => subscriber.off('message', listener);
}
