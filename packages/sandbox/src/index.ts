/**
 * Runs hostile tool code in isolated-vm isolates with time, CPU, memory and result-size limits, and
 * grants it `ctx.fetch` (egress allowlist), `ctx.log` and `ctx.secrets`. No Redis, no HTTP server.
 *
 * @example
 * ```ts
 * const sandbox = new Sandbox();
 * const { value } = await sandbox.run(
 *   { key: 'add@1', code: 'export default (a) => a.x + a.y', timeoutMs: 1000, memoryMb: 32, maxResultBytes: 1 << 20 },
 *   { x: 1, y: 2 },
 * );
 * ```
 */
export { SandboxFleet } from './host/sandbox-fleet.js';
export type { SandboxFleetOptions, HostFailure } from './host/sandbox-fleet.js';
export { Sandbox } from './sandbox.js';
export type { ToolSource, RunOptions, RunResult, DisposalReason, SandboxOptions, CallInfo, ProgressReport } from './sandbox.js';
export { mapStack } from './source-map.js';
export { checkToolCode } from './check-code.js';
export { parseEgressRule, isPrivateAddress, parseNetworkList } from './bridges/egress.js';
export type { EgressRule, NetworkList } from './bridges/egress.js';
export { hostFetch, defaultResolver } from './bridges/fetch-bridge.js';
export type { HostResolver, FetchRequest, FetchReply, FetchLimits } from './bridges/fetch-bridge.js';
export { redactSecrets, REDACTED } from './redact.js';
