/**
 * BullMQ and Redis wiring: connections, key names, the tool registry, the calls (producer, read
 * model, actions, archive paging, tool lifecycle) and the workers' scheduler. No sandbox, no HTTP.
 *
 * @example
 * ```ts
 * const redis = createRedisConnection(url, 'client');
 * const keys = createKeys('toolplane');
 * const registry = new ToolRegistry(redis, keys);
 * const calls = createCalls(redis, keys);
 * const { id } = await calls.producer.enqueue(await registry.get('add'), { a: 1, b: 2 }, { tenant: 'default' });
 * const record = await calls.reads.get(id);
 * ```
 */
export { createRedisConnection, coalesceWrites, waitForRedis, closeRedis, isRedisUnavailable, checkNoEviction } from './connection.js';
export type { RedisConnection, ConnectionRole } from './connection.js';
export { createKeys } from './keys.js';
export type { Keys } from './keys.js';
export { ToolRegistry, watchToolChanges } from './registry.js';
export { ToolNames } from './tool-names.js';
export type { ToolNamesEvents, ToolNamesOptions } from './tool-names.js';
export { createCalls } from './calls.js';
export type { Calls, CallsOptions } from './calls.js';
export { CallProducer } from './call-producer.js';
export type { CallProducerOptions, EnqueueOptions } from './call-producer.js';
export { CallReads } from './call-reads.js';
export type { CallReadsOptions, CallHistory, HistoryCallQuery, CallFilter, EarlierRun } from './call-reads.js';
export { CallActions } from './call-actions.js';
export type { CallActionsOptions } from './call-actions.js';
export { CallArchive } from './call-archive.js';
export type { FinishedCall } from './call-archive.js';
export { ToolLifecycle } from './tool-lifecycle.js';
export { ToolQueueCache } from './tool-queue-cache.js';
export { idempotentCallId, isIdempotentCallId } from './call-ids.js';
export { CallWaiter, announceCallDone, ANNOUNCED_RECORD_MAX_BYTES } from './call-waiter.js';
export { finishedRecord } from './call-record.js';
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
export { ToolBreakers, TrialFailedError, countsAgainstTool } from './breaker.js';
export type { BreakerPass, ToolBreakersOptions } from './breaker.js';
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
