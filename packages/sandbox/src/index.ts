/**
 * Runs hostile tool code in isolated-vm isolates with time, memory and result-size limits.
 * No Redis, no HTTP.
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
export { Sandbox } from './sandbox.js';
export type { ToolSource, RunOptions, RunResult, DisposalReason, SandboxOptions } from './sandbox.js';
export { checkToolCode } from './check-code.js';
