import { DEFAULT_TENANT, UpstreamSpec, parseHeaderSource, type Upstream } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { SecretUnreadableError, type SecretStore } from './secrets.js';

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
  async put(name: string, spec: UpstreamSpec, tenant = DEFAULT_TENANT): Promise<{ upstream: Upstream; created: boolean }> {
    const now = new Date().toISOString();
    const previous = await this.get(name);
    const upstream: Upstream = { ...spec, name, tenant, createdAt: previous?.createdAt ?? now, updatedAt: now };
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
  const { createdAt, updatedAt, name: _stored, tenant, ...spec } = JSON.parse(raw) as Upstream;
  return { ...UpstreamSpec.parse(spec), name, tenant: tenant ?? DEFAULT_TENANT, createdAt, updatedAt };
}

/** A header of an upstream names a secret that is not set (or cannot be opened). */
export class UpstreamSecretError extends Error {
  override readonly name = 'UpstreamSecretError';
  constructor(
    readonly upstream: string,
    readonly secretName: string,
    reason: 'missing' | 'unreadable',
  ) {
    super(
      reason === 'missing'
        ? `secret ${secretName} used by a header of upstream ${upstream} is not set`
        : `secret ${secretName} used by a header of upstream ${upstream} cannot be decrypted`,
    );
  }
}

/**
 * The headers to send to an upstream, with `secret:NAME` values read from the secret store.
 * The result holds secret values: pass it to the MCP client only, never to a log or a response.
 */
export async function resolveUpstreamHeaders(
  upstream: Pick<Upstream, 'name' | 'headers' | 'tenant'>,
  secrets: SecretStore,
): Promise<Record<string, string>> {
  const sources = Object.entries(upstream.headers).map(([header, value]) => [header, parseHeaderSource(value)] as const);
  const wanted = [...new Set(sources.flatMap(([, s]) => (s.kind === 'secret' ? [s.secret] : [])))];
  let values: Record<string, string>;
  try {
    values = await secrets.read(upstream.tenant, wanted);
  } catch (err: unknown) {
    if (err instanceof SecretUnreadableError) throw new UpstreamSecretError(upstream.name, err.secretName, 'unreadable');
    throw err;
  }
  const headers: Record<string, string> = {};
  for (const [header, source] of sources) {
    if (source.kind === 'literal') {
      headers[header] = source.value;
      continue;
    }
    const value = values[source.secret];
    if (value === undefined) throw new UpstreamSecretError(upstream.name, source.secret, 'missing');
    headers[header] = value;
  }
  return headers;
}
