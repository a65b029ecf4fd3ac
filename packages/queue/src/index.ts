/**
 * BullMQ and Redis wiring: connections, key names, the tool registry, the producer and the worker
 * factory. No sandbox, no HTTP.
 *
 * @example
 * ```ts
 * const redis = createRedisConnection(url, 'client');
 * const keys = createKeys('toolplane');
 * const registry = new ToolRegistry(redis, keys);
 * const queues = new ToolQueues(redis, keys);
 * const { id } = await queues.enqueue(await registry.get('add'), { a: 1, b: 2 }, { tenant: 'default' });
 * ```
 */
export { createRedisConnection, waitForRedis, closeRedis, isRedisUnavailable, checkNoEviction } from './connection.js';
export type { RedisConnection, ConnectionRole } from './connection.js';
export { createKeys } from './keys.js';
export type { Keys } from './keys.js';
export { ToolRegistry, watchToolChanges } from './registry.js';
export { ToolQueues, idempotentCallId, isIdempotentCallId } from './calls.js';
export type { EnqueueOptions, ToolQueuesOptions, CallHistory, HistoryCallQuery, FinishedCall, EarlierRun } from './calls.js';
export { CallWaiter, announceCallDone } from './call-waiter.js';
export { PubSubWaiter } from './pubsub-waiter.js';
export type { Wait } from './pubsub-waiter.js';
export { CallEventLog, STREAM_ID_PATTERN } from './call-events.js';
export type { CallEventLogOptions, ProgressEvent, JobEvent } from './call-events.js';
export { CallScheduler } from './call-scheduler.js';
export type { CallSchedulerOptions, SchedulerState } from './call-scheduler.js';
export { DeadlineSweeper, deadlineMessage } from './deadline-sweeper.js';
export type { DeadlineSweeperOptions } from './deadline-sweeper.js';
export { ToolWakeups } from './tool-wakeups.js';
export type { CallProcessor } from './tool-worker.js';
export { encodeFailure, decodeFailure, isStalledTooOften } from './failure.js';
export { CallGate } from './gate.js';
export type { Admission, BreakerState, TenantRateLimit } from './gate.js';
export type { CallFilter } from './calls.js';
export { readQueueDepths } from './queue-depth.js';
export type { QueueState, ToolQueueDepth } from './queue-depth.js';
export { SecretStore, SecretUnreadableError } from './secrets.js';
export type { SecretStoreOptions } from './secrets.js';
export { ApiKeyStore } from './api-keys.js';
export type { ApiKeyRecord } from './api-keys.js';
export { UpstreamStore, UpstreamSecretError, resolveUpstreamHeaders } from './upstreams.js';
export { TenantQuotas, DEFAULT_TENANT_MAX_CALLS_IN_FLIGHT, DEFAULT_TENANT_MAX_RESULT_BYTES } from './tenant-quotas.js';
export type { TenantQuotasOptions, CallAdmission, TenantUsage } from './tenant-quotas.js';
export type { ToolRegistryOptions } from './registry.js';
