/**
 * Every Redis key of webhooks, in one place (the queue's keys are in `@toolplane/queue`).
 *
 * Cluster rule: a tenant's secret lives under the tenant's `{tenant:<name>}` tag like the rest of its
 * bookkeeping; the attempts of one delivery under the call's or run's own tag. The delivery queue's
 * name `{~webhooks}` cannot be a tool's queue (`{<tool>}`): tool names have no `~`.
 */
export type WebhookKeys = ReturnType<typeof createWebhookKeys>;

export function createWebhookKeys(prefix: string) {
  return {
    /** BullMQ `prefix` option, the same as the tool queues'. */
    bullPrefix: prefix,
    /** BullMQ queue of deliveries. */
    queueName: '{~webhooks}',
    /** Hash of the tenant's signing secret: `current`, and during a rotation's grace `previous` and `previousUntil` (ms). */
    secret: (tenant: string) => `${prefix}:{tenant:${tenant}}:webhook-secret`,
    /** List of the attempts to deliver the finish of one call or run (JSON, oldest first). */
    attempts: (kind: string, id: string) => `${prefix}:{webhook:${kind}:${id}}:attempts`,
  };
}
