/**
 * `@toolplane/client`: a typed client of the Toolplane HTTP API.
 *
 * ```ts
 * import { ToolplaneClient, isToolplaneError } from '@toolplane/client';
 * const tp = new ToolplaneClient({ baseUrl: 'http://localhost:8080', apiKey: process.env.TOOLPLANE_KEY });
 * const call = await tp.calls.run({ tool: 'add', arguments: { a: 2, b: 3 } });
 * console.log(call.status, call.result); // succeeded 5
 * for await (const c of tp.calls.list({ tool: 'add', status: 'failed' })) console.log(c.id, c.error?.code);
 * ```
 *
 * Types come from the schemas the planner validates with; refusals throw {@link ToolplaneError}
 * with the API's stable code (`TOOL_NOT_FOUND`, `INVALID_ARGUMENTS`, `QUOTA_EXCEEDED`, …).
 */
export { ToolplaneClient } from './client.js';
export type { CallAccepted, CallFilter, CallInput, CallPage, RunStreamEvent, ToolView } from './client.js';
export { ToolplaneError, isToolplaneError } from './errors.js';
export type { ToolplaneErrorCode } from './errors.js';
export { retryAfterMs } from './http.js';
export type { ClientOptions } from './http.js';
export type { CallRecord } from '@toolplane/core';
export type { RunEvent, RunView } from '@toolplane/agent';
