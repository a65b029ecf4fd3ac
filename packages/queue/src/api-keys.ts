import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Principal, Scope } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { LuaScript } from './lua-script.js';

/** A second's counter is read through the next second, and goes by itself after. */
const COUNTER_TTL_MS = 3_000;
const ADMIT_REQUEST = LuaScript.fromFile('admit-request-2');

/** An API key as stored and listed: never the key itself, only a hash of its secret part. */
export type ApiKeyRecord = { id: string; name: string; tenant: string; scopes: Scope[]; createdAt: string };

type Stored = ApiKeyRecord & { hash: string };

const KEY_PATTERN = /^tp_([0-9a-z]{16})_([A-Za-z0-9_-]{43})$/;

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

/**
 * API keys: `tp_<id>_<secret>`. Only sha256(secret) is stored; the secret has 256 bits of entropy, so a
 * fast hash is enough, and verification compares in constant time. Verified keys are cached briefly so
 * the API does not read Redis twice per request; a revoked key stops working within that time.
 */
export class ApiKeyStore {
  private readonly cache = new Map<string, { principal: Principal | undefined; until: number }>();

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
    private readonly cacheMs = 5_000,
  ) {}

  async create(opts: { name: string; tenant: string; scopes: Scope[] }): Promise<{ key: string; record: ApiKeyRecord }> {
    const id = randomBytes(10).toString('hex').slice(0, 16);
    const secret = randomBytes(32).toString('base64url');
    const record: ApiKeyRecord = { id, name: opts.name, tenant: opts.tenant, scopes: opts.scopes, createdAt: new Date().toISOString() };
    const stored: Stored = { ...record, hash: digest(secret).toString('hex') };
    await this.redis.hset(this.keys.apiKeys, id, JSON.stringify(stored));
    return { key: `tp_${id}_${secret}`, record };
  }

  /** The principal of a presented key, or undefined for anything unknown, revoked or malformed. */
  async verify(presented: string): Promise<Principal | undefined> {
    const m = KEY_PATTERN.exec(presented);
    if (!m) return undefined;
    const cacheKey = digest(presented).toString('hex');
    const hit = this.cache.get(cacheKey);
    if (hit && hit.until > Date.now()) return hit.principal;
    const raw = await this.redis.hget(this.keys.apiKeys, m[1]!);
    let principal: Principal | undefined;
    if (raw) {
      const stored = JSON.parse(raw) as Stored;
      if (timingSafeEqual(Buffer.from(stored.hash, 'hex'), digest(m[2]!))) {
        principal = { keyId: stored.id, tenant: stored.tenant, scopes: stored.scopes };
      }
    }
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(cacheKey, { principal, until: Date.now() + this.cacheMs });
    return principal;
  }

  /**
   * The principal of key `id` and a secret only the server holds for it (the stored hash of the
   * key's secret part), to sign that key's browser sessions (the console's cookie) without keeping
   * the key: a session signed with it dies when the key is revoked. Undefined for unknown ids.
   */
  async sessionSecret(id: string): Promise<{ principal: Principal; secret: string } | undefined> {
    if (!/^[0-9a-z]{16}$/.test(id)) return undefined;
    const raw = await this.redis.hget(this.keys.apiKeys, id);
    if (!raw) return undefined;
    const stored = JSON.parse(raw) as Stored;
    return { principal: { keyId: stored.id, tenant: stored.tenant, scopes: stored.scopes }, secret: stored.hash };
  }

  async list(): Promise<ApiKeyRecord[]> {
    const all = await this.redis.hvals(this.keys.apiKeys);
    return all
      .map((raw) => {
        const { hash: _hash, ...record } = JSON.parse(raw) as Stored;
        return record;
      })
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /**
   * Admits one request of key `keyId` if fewer than `perSecond` were admitted in the last second,
   * across planner replicas (a sliding second, estimated from two one-second counters: see
   * `lua/admit-request-2.lua`). One script run per API request.
   */
  async admitRequest(keyId: string, perSecond: number, nowMs = Date.now()): Promise<boolean> {
    const second = Math.floor(nowMs / 1000);
    const counters = [this.keys.requestWindow(keyId, second), this.keys.requestWindow(keyId, second - 1)];
    return (await ADMIT_REQUEST.run(this.redis, counters, [perSecond, 1000 - (nowMs - second * 1000), COUNTER_TTL_MS])) === 1;
  }

  async revoke(id: string): Promise<boolean> {
    this.cache.clear();
    return (await this.redis.hdel(this.keys.apiKeys, id)) === 1;
  }
}
