import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';

export type SecretStoreOptions = {
  /**
   * 32-byte AES-256-GCM key: values are encrypted at rest when it is set. Every planner and worker
   * of a deployment needs the same key.
   */
  encryptionKey?: Buffer;
};

/** A stored value that cannot be read back: encrypted without a key, wrong key, or tampered with. */
export class SecretUnreadableError extends Error {
  override readonly name = 'SecretUnreadableError';
  constructor(readonly secretName: string) {
    super(`secret ${secretName} cannot be decrypted with the configured key`);
  }
}

const PLAIN = 'plain:';
const SEALED = 'gcm1:';

/**
 * Secrets in one Redis hash, name → value. Values never leave this class except through
 * {@link SecretStore.read}, which the worker calls with the names a tool was granted. With a key,
 * each value is sealed with AES-256-GCM, a fresh IV and the secret's name as associated data (so a
 * sealed value copied under another name does not open).
 */
export class SecretStore {
  private readonly key: Buffer | undefined;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
    opts: SecretStoreOptions = {},
  ) {
    if (opts.encryptionKey && opts.encryptionKey.length !== 32) throw new Error('secret encryption key must be 32 bytes');
    this.key = opts.encryptionKey;
  }

  /** Sets a secret; `created` is true when no secret of that name existed. */
  async put(tenant: string, name: string, value: string): Promise<{ created: boolean }> {
    const field = fieldOf(tenant, name);
    const added = await this.redis.hset(this.keys.secrets, field, this.seal(field, value));
    return { created: added === 1 };
  }

  /** Names only, sorted. */
  async names(tenant: string): Promise<string[]> {
    const prefix = fieldOf(tenant, '');
    return (await this.redis.hkeys(this.keys.secrets))
      .filter((f) => f.startsWith(prefix))
      .map((f) => f.slice(prefix.length))
      .sort();
  }

  async delete(tenant: string, name: string): Promise<boolean> {
    return (await this.redis.hdel(this.keys.secrets, fieldOf(tenant, name))) === 1;
  }

  /** The values of the named secrets that exist; unknown names are left out. */
  async read(tenant: string, names: readonly string[]): Promise<Record<string, string>> {
    if (names.length === 0) return {};
    const raws = await this.redis.hmget(this.keys.secrets, ...names.map((n) => fieldOf(tenant, n)));
    const out: Record<string, string> = {};
    names.forEach((name, i) => {
      const raw = raws[i];
      if (raw !== null && raw !== undefined) out[name] = this.open(fieldOf(tenant, name), raw);
    });
    return out;
  }

  /**
   * A digest that changes whenever one of the named secrets is set, rotated or deleted (for cache
   * keys). Taken over the stored form: a sealed value has a fresh IV per write, so the digest says
   * nothing about the value; a plain one is in Redis as it is anyway.
   */
  async version(tenant: string, names: readonly string[]): Promise<string> {
    if (names.length === 0) return '';
    const raws = await this.redis.hmget(this.keys.secrets, ...names.map((n) => fieldOf(tenant, n)));
    const hash = createHash('sha256');
    for (const raw of raws) hash.update(`${raw === null ? '-' : raw.length}:${raw ?? ''}`);
    return hash.digest('hex').slice(0, 32);
  }

  private seal(name: string, value: string): string {
    if (!this.key) return PLAIN + value;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(name));
    const ct = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return `${SEALED}${iv.toString('base64')}:${cipher.getAuthTag().toString('base64')}:${ct.toString('base64')}`;
  }

  private open(name: string, raw: string): string {
    if (raw.startsWith(PLAIN)) return raw.slice(PLAIN.length);
    if (!raw.startsWith(SEALED) || !this.key) throw new SecretUnreadableError(name);
    const [iv, tag, ct] = raw.slice(SEALED.length).split(':');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv!, 'base64'));
      decipher.setAAD(Buffer.from(name));
      decipher.setAuthTag(Buffer.from(tag!, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(ct!, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretUnreadableError(name);
    }
  }
}

/** Secrets are kept per tenant: a tool can only ever be granted its own tenant's secrets. */
function fieldOf(tenant: string, name: string): string {
  return `${tenant}/${name}`;
}
