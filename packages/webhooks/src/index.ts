/**
 * Signed completion webhooks: a call or run with a `callbackUrl` gets a POST of its final record when
 * it finishes, signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`,
 * `webhook-signature: v1,<base64 HMAC-SHA256>` over `id.timestamp.body`) with its tenant's secret,
 * retried with exponential backoff. No HTTP client of its own: the worker service gives the
 * sandbox's egress-checked fetch as the {@link WebhookSender}.
 *
 * @example
 * ```ts
 * const keys = createWebhookKeys('toolplane');
 * const secrets = new WebhookSecrets(redis, keys);
 * const deliveries = new WebhookDeliveries(redis, keys);
 * await deliveries.enqueue({ kind: 'call', id, tenant, url, data: record, finishedAt: Date.now() });
 * const worker = deliveries.startWorker({ connection: redis, secrets, send });   // in the worker service
 * (await deliveries.status('call', id)).attempts;                                // [{ at, status, durationMs }]
 * ```
 */
export { createWebhookKeys } from './keys.js';
export { WebhookEnv } from './config.js';
export type { WebhookKeys } from './keys.js';
export { newWebhookSecret, signWebhook, verifyWebhook, webhookHeaders, SECRET_PREFIX, DEFAULT_TOLERANCE_S } from './signature.js';
export type { WebhookHeaders } from './signature.js';
export { WebhookSecrets, DEFAULT_ROTATION_GRACE_MS } from './secrets.js';
export type { WebhookSecretsOptions } from './secrets.js';
export { WebhookDeliveries, WebhookKind } from './deliveries.js';
export type {
  WebhookEvent,
  WebhookPayload,
  WebhookAttempt,
  WebhookState,
  WebhookStatus,
  WebhookSendResult,
  WebhookSender,
  WebhookDeliveriesOptions,
  DeliveryWorkerOptions,
} from './deliveries.js';
