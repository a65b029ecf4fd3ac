import { createHash } from 'node:crypto';
import { DEFAULT_TENANT, ToolSpec, type Tool, type ToolVersionInfo } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';

/*
 * KEYS[1] seq hash, KEYS[2] current hash, KEYS[3] spec hash, KEYS[4] deleted names set
 * ARGV[1] tool name, ARGV[2] spec JSON (with createdAt), ARGV[3] change channel
 * Returns {version, existedBefore}.
 */
const PUT_TOOL = `
local existed = redis.call('HEXISTS', KEYS[2], ARGV[1])
local v = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HSET', KEYS[3], ARGV[1] .. '@' .. v, ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], v)
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return {v, existed}
`;

type StoredSpec = ToolSpec & { createdAt: string; tenant?: string; codeHash?: string; createdBy?: string; rolledBackFrom?: number };

/** Who made a version and how (shown by `GET /v1/tools/{name}/versions`). */
export type VersionMeta = { createdBy?: string; rolledBackFrom?: number };

/*
 * KEYS[1] current hash, KEYS[2] spec hash
 * ARGV[1] tool name, ARGV[2..] versions to delete
 * Deletes the given versions of a tool unless one is current. Returns how many went.
 */
const PRUNE_VERSIONS = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
local n = 0
for i = 2, #ARGV do
  if ARGV[i] ~= current then n = n + redis.call('HDEL', KEYS[2], ARGV[1] .. '@' .. ARGV[i]) end
end
return n
`;

/*
 * KEYS[1] seq hash, KEYS[2] current hash, KEYS[3] deleted names set
 * ARGV[1] tool name, ARGV[2] the deletion mark read before (its seq), or '' for the mark itself
 * With ARGV[2] '': returns the name's seq while it is deleted (listed, not current), else false.
 * With a mark: forgets the name (SREM) only if it is still deleted under that mark, i.e. not
 * registered again since; returns 1 if forgotten.
 */
const DELETION_MARK = `
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 or redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 0 then return false end
local seq = redis.call('HGET', KEYS[1], ARGV[1]) or '0'
if ARGV[2] == '' then return seq end
if seq ~= ARGV[2] then return false end
return redis.call('SREM', KEYS[3], ARGV[1])
`;

/*
 * KEYS[1] current hash, KEYS[2] deleted names set
 * ARGV[1] tool name
 * Lists a name as deleted again unless it is registered. Returns 1 if it was not listed.
 */
const RELIST_DELETED = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
return redis.call('SADD', KEYS[2], ARGV[1])
`;

/** How long a followed tool's current version is trusted without a change heard: a safety net for a lost message. */
const CURRENT_TRUST_MS = 10_000;

/** Versions read back per listing: pruning keeps far fewer. */
const MAX_LISTED_VERSIONS = 200;

/** Names read per `HSCAN` page by {@link ToolRegistry.names}. */
const NAMES_PAGE = 1_000;

export type ToolRegistryOptions = {
  /**
   * Ceiling on every tool's `limits.maxResultBytes`: a tool that asks for more gets this, so no tool
   * can produce results larger than the operator allows (the worker sets it from `MAX_RESULT_BYTES`).
   * @default no ceiling beyond the schema's 16 MiB
   */
  maxResultBytes?: number;
  /**
   * Versions kept per tool: past it, the oldest that are neither current nor referenced by a queued
   * call are deleted ({@link ToolRegistry.prune}).
   * @default 20
   */
  maxVersions?: number;
};

/**
 * The tool registry, in Redis so every planner and worker replica sees the same tools.
 * Each version of a tool is kept immutable under `name@version`: a call queued before a replace
 * still runs the code it was validated against, and workers can cache versions forever.
 */
export class ToolRegistry {
  private readonly specCache = new Map<string, Tool>();
  /** Current versions read while {@link followChanges} keeps them true. */
  private readonly current = new Map<string, { version: number; readAt: number }>();
  private following = false;
  /** Moves on every change heard or made: a read that started before one must not be kept. */
  private changes = 0;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
    private readonly opts: ToolRegistryOptions = {},
  ) {}

  /** Registers or replaces a tool; `created` is true when no tool of that name existed. */
  async put(name: string, spec: ToolSpec, tenant = DEFAULT_TENANT, meta: VersionMeta = {}): Promise<{ tool: Tool; created: boolean }> {
    const codeHash = createHash('sha256').update(spec.code).digest('hex');
    const stored: StoredSpec = { ...spec, createdAt: new Date().toISOString(), tenant, codeHash, ...meta };
    const [version, existed] = (await this.redis.eval(
      PUT_TOOL,
      4,
      this.keys.registrySeq,
      this.keys.registryCurrent,
      this.keys.registrySpecs,
      this.keys.registryDeleted,
      name,
      JSON.stringify(stored),
      this.keys.registryChanged,
    )) as [number, number];
    this.forget(name);
    const tool = this.withCeilings({ ...spec, createdAt: stored.createdAt, tenant, name, version, codeHash, ...meta });
    this.specCache.set(`${name}@${version}`, tool);
    return { tool, created: existed === 0 };
  }

  /** The current version of a tool, or `undefined`. */
  async get(name: string): Promise<Tool | undefined> {
    const version = await this.currentVersion(name);
    return version === null ? undefined : this.getVersion(name, version);
  }

  /**
   * Keeps the current version of each tool read in memory, saving {@link get} its round trip (every
   * call submitted asks): a version is forgotten when `subscriber` hears its tool change on any
   * replica (registering publishes in the script that writes, deleting right after), when this
   * registry changes it, after {@link CURRENT_TRUST_MS} in any case, and all of them while the
   * subscriber is disconnected (messages sent meanwhile are lost). Another replica's change is seen
   * within the message's delivery, as a request that read the version just before it would have.
   */
  async followChanges(subscriber: RedisConnection): Promise<void> {
    const forgetAll = () => {
      this.following = false;
      this.changes++;
      this.current.clear();
    };
    const follow = async () => {
      // Subscribing again is harmless, and its reply says the subscription is in place.
      await subscriber.subscribe(this.keys.registryChanged);
      this.changes++;
      this.current.clear();
      this.following = true;
    };
    subscriber.on('close', forgetAll);
    subscriber.on('ready', () => void follow().catch(forgetAll));
    await watchToolChanges(subscriber, this.keys, (name) => this.forget(name));
    await follow();
  }

  private async currentVersion(name: string): Promise<number | null> {
    const known = this.following ? this.current.get(name) : undefined;
    if (known && Date.now() - known.readAt < CURRENT_TRUST_MS) return known.version;
    const changes = this.changes;
    const raw = await this.redis.hget(this.keys.registryCurrent, name);
    const version = raw === null ? null : Number(raw);
    // A name with no tool is not kept: anyone may ask for any name, and the map must stay as small as the registry.
    if (version !== null && this.following && changes === this.changes) this.current.set(name, { version, readAt: Date.now() });
    return version;
  }

  private forget(name: string): void {
    this.changes++;
    this.current.delete(name);
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

  /**
   * Names of the current tools, read in pages: one `HKEYS` of 100,000 names holds Redis for ~28 ms,
   * a page of 1,000 for well under one.
   */
  async names(): Promise<string[]> {
    const names = new Set<string>();
    let cursor = '0';
    do {
      const [next, entries] = await this.redis.hscan(this.keys.registryCurrent, cursor, 'COUNT', NAMES_PAGE);
      cursor = next;
      for (let i = 0; i < entries.length; i += 2) names.add(entries[i]!);
    } while (cursor !== '0');
    return [...names];
  }

  /** Whether a current tool has this name. */
  async has(name: string): Promise<boolean> {
    return (await this.redis.hexists(this.keys.registryCurrent, name)) === 1;
  }

  /** The kept versions of a tool, newest first (at most the latest {@link MAX_LISTED_VERSIONS}). */
  async versions(name: string): Promise<ToolVersionInfo[]> {
    const [latest, current] = await Promise.all([this.redis.hget(this.keys.registrySeq, name), this.redis.hget(this.keys.registryCurrent, name)]);
    if (latest === null) return [];
    const top = Number(latest);
    const numbers: number[] = [];
    for (let v = top; v >= 1 && numbers.length < MAX_LISTED_VERSIONS; v--) numbers.push(v);
    const raws = await this.redis.hmget(this.keys.registrySpecs, ...numbers.map((v) => `${name}@${v}`));
    const out: ToolVersionInfo[] = [];
    numbers.forEach((version, i) => {
      const raw = raws[i];
      if (!raw) return;
      const s = JSON.parse(raw) as StoredSpec;
      out.push({
        version,
        createdAt: s.createdAt,
        codeHash: s.codeHash ?? createHash('sha256').update(s.code).digest('hex'),
        ...(s.createdBy ? { createdBy: s.createdBy } : {}),
        ...(s.rolledBackFrom ? { rolledBackFrom: s.rolledBackFrom } : {}),
        current: current !== null && Number(current) === version,
      });
    });
    return out;
  }

  /**
   * Makes a new current version whose spec is that of `version` (as `wrangler rollback` makes a new
   * deployment of old code): versions only grow, so result caches and queued calls stay exact.
   */
  async rollback(name: string, version: number, meta: VersionMeta = {}): Promise<Tool | undefined> {
    const raw = await this.redis.hget(this.keys.registrySpecs, `${name}@${version}`);
    if (raw === null) return undefined;
    // The spec as stored, before the operator's ceilings were applied to it.
    const old = JSON.parse(raw) as StoredSpec;
    const stored = ToolSpec.parse(stripStored(old));
    const tenant = old.tenant ?? DEFAULT_TENANT;
    return (await this.put(name, stored, tenant, { ...meta, rolledBackFrom: version })).tool;
  }

  /**
   * Deletes the oldest versions past `keep` ({@link ToolRegistryOptions.maxVersions} unless told),
   * never the current one nor one in `referenced` (versions queued calls still need). Returns the
   * versions deleted. A deleted tool is pruned with `keep` 0: only what its queued calls need stays.
   */
  async prune(name: string, referenced: ReadonlySet<number> = new Set(), keep = this.opts.maxVersions ?? 20): Promise<number[]> {
    const kept = await this.versions(name);
    if (kept.length <= keep) return [];
    const doomed = kept
      .slice(keep)
      .filter((v) => !v.current && !referenced.has(v.version))
      .map((v) => v.version);
    if (doomed.length === 0) return [];
    await this.redis.eval(PRUNE_VERSIONS, 2, this.keys.registryCurrent, this.keys.registrySpecs, name, ...doomed.map(String));
    for (const v of doomed) this.specCache.delete(`${name}@${v}`);
    return doomed;
  }

  /**
   * Removes a tool; its versions stay readable for calls already queued (prune it with `keep` 0
   * to drop the rest). Its version counter stays, so a tool made again under the name never reuses a
   * version number (result caches are keyed by version).
   */
  async delete(name: string): Promise<boolean> {
    const removed = await this.redis.hdel(this.keys.registryCurrent, name);
    this.forget(name);
    if (removed) {
      // Listed for the archiver until its queue holds nothing more ({@link forgetDeleted}).
      await this.redis.sadd(this.keys.registryDeleted, name);
      await this.redis.publish(this.keys.registryChanged, name);
    }
    return removed === 1;
  }

  /** Deleted tools whose queues may still hold calls (finished ones to archive, queued ones to run). */
  deletedNames(): Promise<string[]> {
    return this.redis.smembers(this.keys.registryDeleted);
  }

  /**
   * A call of `name` turned up after the name was forgotten (accepted just before its delete, added
   * just after it was found empty): the name goes back on the deleted list unless it is registered,
   * so the sweep settles what the call leaves. Returns whether it was listed again.
   */
  async relistDeleted(name: string): Promise<boolean> {
    return (await this.redis.eval(RELIST_DELETED, 2, this.keys.registryCurrent, this.keys.registryDeleted, name)) === 1;
  }

  /**
   * Which deletion of `name` is listed: a mark (the name's version counter, moved by every register)
   * while the name is deleted and still listed, `undefined` once it is registered again or forgotten.
   * Read it before checking what the tool still holds, and hand it to {@link forgetDeleted}.
   */
  async deletionMark(name: string): Promise<string | undefined> {
    const mark = (await this.redis.eval(DELETION_MARK, 3, this.keys.registrySeq, this.keys.registryCurrent, this.keys.registryDeleted, name, '')) as string | null;
    return mark ?? undefined;
  }

  /**
   * A deleted tool's queue holds nothing any more: it is forgotten for good, unless the name was
   * registered since `mark` was read. A tool registered, used and deleted again in between has calls
   * of its own to archive: its name stays listed (the emptiness seen was the old tool's).
   * Returns whether the name was forgotten.
   */
  async forgetDeleted(name: string, mark: string): Promise<boolean> {
    const n = (await this.redis.eval(DELETION_MARK, 3, this.keys.registrySeq, this.keys.registryCurrent, this.keys.registryDeleted, name, mark)) as number | null;
    return n === 1;
  }

  private decode(name: string, version: number, raw: string): Tool {
    const stored = JSON.parse(raw) as StoredSpec;
    const { createdAt, tenant, codeHash, createdBy, rolledBackFrom } = stored;
    return this.withCeilings({
      ...ToolSpec.parse(stripStored(stored)),
      createdAt,
      tenant: tenant ?? DEFAULT_TENANT,
      name,
      version,
      ...(codeHash ? { codeHash } : {}),
      ...(createdBy ? { createdBy } : {}),
      ...(rolledBackFrom ? { rolledBackFrom } : {}),
    });
  }

  /** The tool as it may run here: its limits clamped to the operator's ceilings. */
  private withCeilings(tool: Tool): Tool {
    const max = this.opts.maxResultBytes;
    if (max === undefined || tool.limits.maxResultBytes <= max) return tool;
    return { ...tool, limits: { ...tool.limits, maxResultBytes: max } };
  }
}

/** The spec part of a stored version, without the registry's own fields. */
function stripStored(stored: StoredSpec): ToolSpec {
  const { createdAt: _c, tenant: _t, codeHash: _h, createdBy: _b, rolledBackFrom: _r, ...spec } = stored;
  return spec as ToolSpec;
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
