import type { RedisConnection } from '@toolplane/queue';
import type { WebhookKeys } from './keys.js';
import { newWebhookSecret } from './signature.js';

export type WebhookSecretsOptions = {
  /**
   * How long the secret a rotation replaced still signs deliveries, next to the new one (Standard
   * Webhooks sends several space-separated signatures): receivers can switch to the new secret in
   * their own time without refusing a delivery. 0 ends the old secret at once.
   * @default 24 hours
   */
  rotationGraceMs?: number;
};

/** A day: long enough to roll a receiver's configuration out, short enough that a leaked secret dies soon. */
export const DEFAULT_ROTATION_GRACE_MS = 86_400_000;

/**
 * Replaces `current` in one step, keeping the replaced one as `previous` until `previousUntil`
 * (two rotations at once must not lose either secret to a read-then-write race).
 * KEYS[1] the tenant's secret hash; ARGV[1] new secret, ARGV[2] previousUntil (ms), 0 for none.
 */
const ROTATE = `
local old = redis.call('HGET', KEYS[1], 'current')
redis.call('HSET', KEYS[1], 'current', ARGV[1])
if old and ARGV[2] ~= '0' then
  redis.call('HSET', KEYS[1], 'previous', old, 'previousUntil', ARGV[2])
else
  redis.call('HDEL', KEYS[1], 'previous', 'previousUntil')
end
return 1`;

/**
 * Each tenant's Standard Webhooks signing secret (`whsec_…`), in Redis under the tenant's tag. The
 * secret is made on first read, so a tenant that never reads it still gets signed deliveries that
 * it can verify once it does.
 */
export class WebhookSecrets {
  private readonly graceMs: number;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: WebhookKeys,
    opts: WebhookSecretsOptions = {},
  ) {
    this.graceMs = opts.rotationGraceMs ?? DEFAULT_ROTATION_GRACE_MS;
  }

  /** The tenant's current secret, made now if it has none. */
  async current(tenant: string): Promise<string> {
    const key = this.keys.secret(tenant);
    // HSETNX: two first reads at once agree on one secret.
    await this.redis.hsetnx(key, 'current', newWebhookSecret());
    return (await this.redis.hget(key, 'current'))!;
  }

  /** Replaces the tenant's secret; the old one keeps signing for the grace period. Returns the new one. */
  async rotate(tenant: string, nowMs = Date.now()): Promise<string> {
    const secret = newWebhookSecret();
    const until = this.graceMs > 0 ? nowMs + this.graceMs : 0;
    await this.redis.eval(ROTATE, 1, this.keys.secret(tenant), secret, String(until));
    return secret;
  }

  /** Every secret a delivery is signed with now: the current one first, then the replaced one while its grace lasts. */
  async signing(tenant: string, nowMs = Date.now()): Promise<string[]> {
    const current = await this.current(tenant);
    const [previous, until] = await this.redis.hmget(this.keys.secret(tenant), 'previous', 'previousUntil');
    return previous && Number(until) > nowMs ? [current, previous] : [current];
  }
}
