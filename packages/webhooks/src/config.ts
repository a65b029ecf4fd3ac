import { z } from 'zod';

/**
 * Environment of webhook deliveries, read by the planner and the workers alike: both queue
 * deliveries (runs finish in the planner, calls on the workers), and the attempts and backoff are
 * fixed when a delivery is queued.
 */
export const WebhookEnv = {
  /** Attempts per delivery, the first included. */
  WEBHOOK_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(50).default(10),
  /** Delay before the second attempt; each later one waits twice as long (10 attempts from 1 s: ~8.5 min). */
  WEBHOOK_BACKOFF_MS: z.coerce.number().int().min(10).max(3_600_000).default(1_000),
};
