/**
 * Types, schemas, errors and config helpers shared by every Toolplane package and service.
 *
 * @example
 * ```ts
 * import { ToolSpec, RequestError } from '@toolplane/core';
 * const spec = ToolSpec.parse(body);
 * if (!spec.parameters.type) throw new RequestError('INVALID_TOOL', 'parameters must be an object schema');
 * ```
 */
export {
  RequestErrorCode,
  CallErrorCode,
  SerializedError,
  RequestError,
  ToolExecError,
  isToolExecError,
  toToolExecError,
  isRequestError,
  assertNever,
} from './errors.js';
export type { ErrorCode } from './errors.js';
export { RETRYABLE_CODES, MAX_FAILURE_MESSAGE_CHARS, isCallErrorCode, toPublicFailure } from './failure.js';
export type { PublicFailure } from './failure.js';
export {
  ToolName,
  ToolLimits,
  ToolRateLimit,
  ToolRetries,
  ToolBreaker,
  ToolSpec,
  EgressEntry,
  SecretName,
  MAX_TOOL_CODE_BYTES,
  MAX_SOURCE_MAP_BYTES,
  MAX_DEADLINE_MS,
  DeadlineMs,
  UpstreamToolRef,
} from './tool.js';
export type { Tool, ToolSpecInput, ToolVersionInfo } from './tool.js';
export { UpstreamName, UpstreamSpec, UPSTREAM_TOOL_CODE, parseHeaderSource } from './upstream.js';
export type { Upstream, UpstreamHeaderSource } from './upstream.js';
export {
  CallStatus,
  CallRequest,
  CallJobData,
  readCallJobData,
  CallRecord,
  CallbackUrl,
  MAX_CALLBACK_URL_LENGTH,
  MAX_WAIT_MS,
  DEFAULT_WAIT_MS,
  isFinished,
} from './call.js';
export type { CallOutput } from './call.js';
export { Port, BoolEnv, LogLevel, RedisUrl, SecretsKey, TracingEnv, ConfigError, parseConfig } from './config.js';
export { ServiceEnv, MAX_STALLED_COUNT, serviceConfig, jobLockOptions, loadServiceConfig } from './config.js';
export { createLogger, silentLogger } from './logger.js';
export { createLagMonitor, DEFAULT_MAX_LAG_MS, DEFAULT_LAG_WINDOW_MS } from './liveness.js';
export type { LagMonitor, LagMonitorOptions, LagStatus } from './liveness.js';
export type { Logger } from './logger.js';
export { newCallId, CALL_ID_PATTERN } from './ids.js';
export { canonicalJson, hashArguments } from './canonical.js';
export { Scope, TenantName, DEFAULT_TENANT, hasScope, canSee } from './auth.js';
export type { Principal } from './auth.js';
